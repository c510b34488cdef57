/**
 * cautiousSetup()  or  cautiousSetup(package: 'cautious==0.1.0', python: 'python3.12')
 *
 * Installs Cautious into a virtual environment in the workspace (from a Python 3.11+ on the
 * agent), checks that a Docker engine answers, and sets env.CAUTIOUS_CLI to the installed
 * `cautious` so that cautiousRollout and cautiousGameday use it. Returns that path.
 * Parameters: see cautiousSetup.txt.
 */
def call(Map args = [:]) {
    List<String> known = ['python', 'package', 'venv', 'checkDocker']
    for (Object key : args.keySet()) {
        if (!known.contains(key.toString())) {
            error("cautiousSetup: unknown parameter ${key}; known: ${known.join(', ')}")
        }
    }
    String venv = args.venv ?: '.cautious-venv'
    boolean checkDocker = args.containsKey('checkDocker') ? args.checkDocker as boolean : true
    // Values reach the script through the environment, never pasted into it.
    withEnv([
        "CAUTIOUS_PYTHON=${args.python ?: 'python3'}",
        "CAUTIOUS_PACKAGE=${args.package ?: 'cautious'}",
        "CAUTIOUS_VENV=${venv}",
        "CAUTIOUS_CHECK_DOCKER=${checkDocker}",
    ]) {
        sh(script: libraryResource('io/cautious/jenkins/setup.sh'), label: 'cautious setup')
    }
    String cli = "${venv}/bin/cautious".toString()
    env.CAUTIOUS_CLI = cli
    return cli
}
