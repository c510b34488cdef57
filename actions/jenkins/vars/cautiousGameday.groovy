import io.cautious.jenkins.CautiousCommand
import io.cautious.jenkins.CautiousRun

/**
 * cautiousGameday(suite: 'chaos/gameday.yaml')
 * cautiousGameday(experiment: 'chaos/experiments/kill-mid-rollout.json')
 *
 * Runs a chaos game day on the Docker sandbox (`cautious gameday`, or one experiment with
 * `cautious chaos.run`), publishes junit.xml, archives the report folder and fails the build
 * (`error`) when an experiment deviated or a claim failed. Returns the same map as
 * cautiousRollout. Parameters: see cautiousGameday.txt.
 */
def call(Map args = [:]) {
    Map options = [:] + args
    options.reportDir = options.reportDir ?: "cautious-reports/gameday-${env.BUILD_NUMBER ?: 'local'}".toString()
    options.cli = options.cli ?: (env.CAUTIOUS_CLI ?: 'cautious')
    String config = (options.config ?: (env.CAUTIOUS_CONFIG ?: 'cautious.yaml')).toString()
    boolean failOnClaim = options.containsKey('failOnClaim') ? options.failOnClaim as boolean : true
    String command = null
    try {
        command = CautiousCommand.gameday(options)
    } catch (IllegalArgumentException bad) {
        error("cautiousGameday: ${bad.message}")
    }
    String what = options.experiment ? 'cautious chaos.run' : 'cautious gameday'
    return new CautiousRun(this).run(
        command, options.reportDir as String, what, options.workingDirectory, failOnClaim, config)
}
