import io.cautious.jenkins.CautiousCommand
import io.cautious.jenkins.CautiousRun

/**
 * cautiousRollout(release: 'v2', strategy: 'rolling', claims: [success_ratio: 0.999])
 *
 * Runs `cautious deploy` (test → build → rollout on the Docker sandbox under load → verdict),
 * publishes junit.xml (one test case per claim), archives the report folder and fails the build
 * (`error`) unless every claim held. Returns [verdict, successRatio, reportDir, exitCode,
 * failedClaims, failures, passed, message]. Parameters: see cautiousRollout.txt.
 */
def call(Map args = [:]) {
    Map options = [:] + args
    options.reportDir = options.reportDir ?: "cautious-reports/rollout-${env.BUILD_NUMBER ?: 'local'}".toString()
    options.cli = options.cli ?: (env.CAUTIOUS_CLI ?: 'cautious')
    String config = (options.config ?: (env.CAUTIOUS_CONFIG ?: 'cautious.yaml')).toString()
    boolean failOnClaim = options.containsKey('failOnClaim') ? options.failOnClaim as boolean : true
    String command = null
    try {
        command = CautiousCommand.deploy(options)
    } catch (IllegalArgumentException bad) {
        error("cautiousRollout: ${bad.message}")
    }
    return new CautiousRun(this).run(
        command, options.reportDir as String, 'cautious deploy', options.workingDirectory, failOnClaim, config)
}
