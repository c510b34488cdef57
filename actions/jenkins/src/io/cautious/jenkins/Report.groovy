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
     * The 1-based line of each claim under the top-level {@code claims:} key of a cautious.yaml;
     * the key '' holds the {@code claims:} line itself (a flow mapping has only that). A line
     * scanner, as cautious.yaml is written with block mappings; no YAML plugin needed.
     */
    @NonCPS
    static Map<String, Integer> claimLines(String text) {
        Map<String, Integer> lines = [:]
        Integer indent = null
        int number = 0
        for (String line : text.readLines()) {
            number++
            if (!lines.containsKey('')) {
                if (line ==~ /^claims\s*:.*/) {
                    lines[''] = number
                }
                continue
            }
            String trimmed = line.trim()
            if (!trimmed || trimmed.startsWith('#')) {
                continue
            }
            if (!Character.isWhitespace(line.charAt(0))) {
                break  // the next top-level key ends the section
            }
            java.util.regex.Matcher key = line =~ /^(\s+)([A-Za-z_]\w*)\s*:/
            if (key.find() && (indent == null || key.group(1).length() == indent)) {
                indent = key.group(1).length()
                lines[key.group(2)] = number
            }
        }
        return lines
    }

    /**
     * The result a step returns: verdict ('pass' | 'fail' | 'not-enough-data' | 'error' when
     * there is no report), successRatio (a Double or null), failedClaims (names), failures
     * (one line each), annotations ([file, line, title, message] per failed or undecided claim,
     * pointing at the claim's line in {@code config}), passed (true only when the verdict is
     * pass and the exit code 0) and message. {@code lines} is claimLines() of the config file,
     * null when it could not be read (then failures name no line).
     */
    @NonCPS
    static Map summarize(Map report, int exitCode, String what, String config = null, Map lines = null) {
        if (report == null) {
            String message = "${what} exited with ${exitCode} and wrote no report.json" +
                (exitCode == 2 ? ' (exit 2: bad input; see the line starting with "cautious:")' : '')
            return [
                verdict: 'error', successRatio: null, failedClaims: [], failures: [message],
                annotations: [], passed: false, message: "Cautious: ${message}".toString(),
            ]
        }
        String verdict = report.verdict ? report.verdict.toString() : 'error'
        List<String> failedClaims = []
        List<String> failures = []
        List<Map> annotations = []
        for (Object item : (report.claims ?: [])) {
            Map claim = (Map) item
            String text = null
            if (claim.verdict == 'fail') {
                failedClaims << claim.name.toString()
                text = "claim ${claim.name}: ${claim.detail ?: "measured ${claim.measured}, target ${claim.target}"}".toString()
            } else if (claim.verdict == 'not-enough-data') {
                text = "claim ${claim.name}: not enough data${claim.detail ? ' (' + claim.detail + ')' : ''}".toString()
            }
            if (text != null && config != null && lines != null) {
                int line = (lines[claim.name.toString()] ?: lines[''] ?: 1) as int
                annotations << [file: config, line: line, title: "claim ${claim.name}".toString(), message: text]
                text = "${config}:${line}: ${text}".toString()
            }
            if (text != null) {
                failures << text
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
            annotations: annotations,
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
