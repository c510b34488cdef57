package io.cautious.jenkins

import com.cloudbees.groovy.cps.NonCPS

/**
 * Builds the command lines the library runs with {@code sh}: every value single-quoted for a
 * POSIX shell unless it is made only of characters no shell treats specially, and every option
 * checked before anything runs, so a parameter can never become shell code.
 *
 * Plain static methods without Jenkins steps (@NonCPS): testable with plain Groovy.
 */
class CautiousCommand implements Serializable {

    private static final long serialVersionUID = 1L

    static final List<String> ROLLOUT_KEYS = [
        'release', 'strategy', 'claims', 'config', 'reportDir', 'workingDirectory', 'cli',
        'failOnClaim',
    ]

    static final List<String> GAMEDAY_KEYS = [
        'suite', 'experiment', 'config', 'reportDir', 'workingDirectory', 'cli', 'failOnClaim',
    ]

    static final List<String> STRATEGIES = ['rolling', 'blue-green', 'canary', 'stop-and-go']

    /**
     * Where this library (and the Cautious it installs) is published; whoever publishes
     * Cautious replaces `your-org/cautious` once, everywhere (see docs/ci.md).
     */
    static final String SUITE_REPOSITORY = 'https://github.com/your-org/cautious.git'

    /** Characters that need no quoting in a POSIX shell word. */
    private static final String SAFE = /^[A-Za-z0-9_.\/=:@%+,-]+$/

    /** One shell word: the text itself when it is safe, else single-quoted. */
    @NonCPS
    static String quote(Object value) {
        String text = value == null ? '' : value.toString()
        if (text ==~ SAFE) {
            return text
        }
        return "'" + text.replace("'", "'\"'\"'") + "'"
    }

    /** The words joined into one command line, each quoted as needed. */
    @NonCPS
    static String join(List<Object> words) {
        List<String> quoted = []
        for (Object word : words) {
            quoted << quote(word)
        }
        return quoted.join(' ')
    }

    /** Refuse keys a step does not know (a typo would otherwise be ignored silently). */
    @NonCPS
    static void checkKeys(String step, Map args, List<String> known) {
        List<String> unknown = []
        for (Object key : args.keySet()) {
            if (!known.contains(key.toString())) {
                unknown << key.toString()
            }
        }
        if (unknown) {
            throw new IllegalArgumentException(
                "${step}: unknown parameter(s) ${unknown.join(', ')}; known: ${known.join(', ')}")
        }
    }

    /**
     * Claim overrides as NAME=VALUE words: from a Map ([success_ratio: 0.999]), a List
     * (['success_ratio=0.999']) or a String ('success_ratio=0.999 p99_ms=300', commas allowed).
     */
    @NonCPS
    static List<String> claims(Object claims) {
        List<String> items = []
        if (claims == null || claims == '') {
            return items
        }
        if (claims instanceof Map) {
            for (Object entry : ((Map) claims).entrySet()) {
                Map.Entry e = (Map.Entry) entry
                items << "${e.key}=${e.value}".toString()
            }
        } else if (claims instanceof Collection) {
            for (Object item : (Collection) claims) {
                items << item.toString()
            }
        } else {
            for (String item : claims.toString().split(/[\s,]+/)) {
                if (item) {
                    items << item
                }
            }
        }
        for (String item : items) {
            if (!(item ==~ /^[a-z][a-z0-9_]*=\S+$/)) {
                throw new IllegalArgumentException(
                    "claims: '${item}' is not NAME=VALUE (e.g. success_ratio=0.999)")
            }
        }
        return items
    }

    /** {@code cautious deploy ...} for cautiousRollout; {@code args} must hold reportDir. */
    @NonCPS
    static String deploy(Map args) {
        checkKeys('cautiousRollout', args, ROLLOUT_KEYS)
        List<Object> words = [cli(args), 'deploy']
        if (args.config) {
            words += ['--config', args.config]
        }
        if (args.strategy) {
            if (!STRATEGIES.contains(args.strategy.toString())) {
                throw new IllegalArgumentException(
                    "strategy: '${args.strategy}' is not one of ${STRATEGIES.join(', ')}")
            }
            words += ['--strategy', args.strategy]
        }
        if (args.release) {
            words += ['--release', args.release]
        }
        for (String claim : claims(args.claims)) {
            words += ['--claim', claim]
        }
        words += ['--report-dir', required(args, 'reportDir')]
        return join(words)
    }

    /**
     * {@code cautious gameday [--suite FILE] ...}, or {@code cautious chaos.run EXPERIMENT ...}
     * when an experiment is given.
     */
    @NonCPS
    static String gameday(Map args) {
        checkKeys('cautiousGameday', args, GAMEDAY_KEYS)
        if (args.suite && args.experiment) {
            throw new IllegalArgumentException('give either suite or experiment, not both')
        }
        List<Object> words = [cli(args)]
        if (args.experiment) {
            words += ['chaos.run', args.experiment]
        } else {
            words << 'gameday'
            if (args.suite) {
                words += ['--suite', args.suite]
            }
        }
        if (args.config) {
            words += ['--config', args.config]
        }
        words += ['--report-dir', required(args, 'reportDir')]
        return join(words)
    }

    /** {@code cautious sandbox.down [--config FILE]}. */
    @NonCPS
    static String sandboxDown(Map args) {
        List<Object> words = [cli(args), 'sandbox.down']
        if (args.config) {
            words += ['--config', args.config]
        }
        return join(words)
    }

    /**
     * The pip requirement for the suite in {@code repository} at git ref {@code version} (the
     * library's own version), or for a distribution in a subfolder of it (chaos/).
     */
    @NonCPS
    static String suitePackage(String repository, String version, String subdirectory = null) {
        if (!(version ==~ /^[A-Za-z0-9][A-Za-z0-9._\/-]*$/)) {
            throw new IllegalArgumentException("version: '${version}' is not a git tag, branch or commit")
        }
        String requirement = "git+${repository}@${version}"
        return (subdirectory ? "${requirement}#subdirectory=${subdirectory}" : requirement).toString()
    }

    @NonCPS
    private static Object cli(Map args) {
        return args.cli ?: 'cautious'
    }

    @NonCPS
    private static Object required(Map args, String key) {
        if (!args[key]) {
            throw new IllegalArgumentException("${key} is required")
        }
        return args[key]
    }
}
