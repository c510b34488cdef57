package io.cautious.jenkins

import com.cloudbees.groovy.cps.NonCPS

/**
 * Reads what a Cautious report.json (as returned by readJSON) says: the verdict, the success
 * ratio, the failed claims and experiments, and one message that explains a failure.
 *
 * Works on any Map, so it needs no Jenkins plugin class. Plain static methods without Jenkins
 * steps (@NonCPS).
 */
class Report implements Serializable {

    private static final long serialVersionUID = 1L

    /**
     * The result a step returns: verdict ('pass' | 'fail' | 'not-enough-data' | 'error' when
     * there is no report), successRatio (a Double or null), failedClaims (names), failures
     * (one line each), passed (true only when the verdict is pass and the exit code 0) and
     * message.
     */
    @NonCPS
    static Map summarize(Map report, int exitCode, String what) {
        if (report == null) {
            String message = "${what} exited with ${exitCode} and wrote no report.json" +
                (exitCode == 2 ? ' (exit 2: bad input; see the line starting with "cautious:")' : '')
            return [
                verdict: 'error', successRatio: null, failedClaims: [], failures: [message],
                passed: false, message: "Cautious: ${message}".toString(),
            ]
        }
        String verdict = report.verdict ? report.verdict.toString() : 'error'
        List<String> failedClaims = []
        List<String> failures = []
        for (Object item : (report.claims ?: [])) {
            Map claim = (Map) item
            if (claim.verdict == 'fail') {
                failedClaims << claim.name.toString()
                failures << "claim ${claim.name}: ${claim.detail ?: "measured ${claim.measured}, target ${claim.target}"}".toString()
            } else if (claim.verdict == 'not-enough-data') {
                failures << "claim ${claim.name}: not enough data${claim.detail ? ' (' + claim.detail + ')' : ''}".toString()
            }
        }
        for (Object item : (report.experiments ?: [])) {
            Map experiment = (Map) item
            if (experimentFailed(experiment)) {
                String name = experiment.name ?: experiment.experiment ?: experiment.title ?: '?'
                String status = experiment.verdict ?: experiment.status ?: 'failed'
                failures << "experiment ${name}: ${status}${experiment.deviated ? ' (deviated)' : ''}".toString()
            }
        }
        Map rollout = report.rollout instanceof Map ? (Map) report.rollout : null
        if (rollout != null && rollout.outcome && rollout.outcome != 'succeeded') {
            failures << "rollout ${rollout.from_release} -> ${rollout.to_release} ${rollout.outcome}${rollout.reason ? ': ' + rollout.reason : ''}".toString()
        }
        boolean passed = verdict == 'pass' && exitCode == 0
        if (!passed && !failures) {
            failures << (report.verdict_reason ?: "${what} exited with ${exitCode}").toString()
        }
        Object ratio = report.availability instanceof Map ? ((Map) report.availability).success_ratio : null
        String message = passed ?
            "Cautious: ${verdict}${report.verdict_reason ? ' (' + report.verdict_reason + ')' : ''}" :
            "Cautious: verdict ${verdict} - ${failures.join('; ')}"
        return [
            verdict: verdict,
            successRatio: ratio == null ? null : (ratio as Double),
            failedClaims: failedClaims,
            failures: failures,
            passed: passed,
            message: message.toString(),
        ]
    }

    @NonCPS
    private static boolean experimentFailed(Map experiment) {
        if (experiment.deviated == true) {
            return true
        }
        if (experiment.verdict != null) {
            return experiment.verdict != 'pass'
        }
        return experiment.status != null && experiment.status != 'completed'
    }
}
