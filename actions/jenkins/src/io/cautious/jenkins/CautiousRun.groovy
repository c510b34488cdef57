package io.cautious.jenkins

/**
 * Runs one Cautious command through the pipeline's steps and handles its report folder:
 * `sh` (exit code kept), `junit` for junit.xml, `archiveArtifacts` for the folder, `readJSON`
 * for the verdict, `readFile` of cautious.yaml so that a failed claim names its line there
 * (`cautious.yaml:12: claim success_ratio: …`), then `error` (or `unstable`) unless every
 * claim held.
 *
 * Holds the calling script (`this` of a vars/ step) to reach the pipeline steps, the usual
 * shared-library pattern. readJSON comes from the Pipeline Utility Steps plugin (returnPojo:
 * plain maps and lists, real nulls).
 */
class CautiousRun implements Serializable {

    private static final long serialVersionUID = 1L

    private final Object steps

    CautiousRun(Object steps) {
        this.steps = steps
    }

    /**
     * Run {@code command} in {@code folder} (the workspace when empty or '.'), publish the
     * report written to {@code reportDir} (relative to that folder) and decide; {@code config}
     * is the cautious.yaml the command reads (relative to that folder too).
     */
    Map run(String command, String reportDir, String what, Object folder, boolean failOnClaim, String config) {
        Map result
        if (folder && folder.toString() != '.') {
            steps.dir(folder.toString()) {
                result = runHere(command, reportDir, what, config)
            }
        } else {
            result = runHere(command, reportDir, what, config)
        }
        steps.echo(result.message)
        if (!result.passed) {
            if (failOnClaim) {
                steps.error(result.message)
            }
            steps.unstable(result.message)
        }
        return result
    }

    private Map runHere(String command, String reportDir, String what, String config) {
        int status = steps.sh(script: command, returnStatus: true, label: what) as int
        String junitXml = "${reportDir}/junit.xml"
        if (steps.fileExists(junitXml)) {
            steps.junit(testResults: junitXml, allowEmptyResults: true)
        }
        steps.archiveArtifacts(artifacts: "${reportDir}/**", allowEmptyArchive: true)
        String json = "${reportDir}/report.json"
        Map report = steps.fileExists(json) ? (steps.readJSON(file: json, returnPojo: true) as Map) : null
        Map lines = steps.fileExists(config) ? Report.claimLines(steps.readFile(config) as String) : null
        Map result = Report.summarize(report, status, what, config, lines)
        result.reportDir = reportDir
        result.exitCode = status
        return result
    }
}
