import io.cautious.jenkins.CautiousCommand

/**
 * cautiousSetup()  or  cautiousSetup(chaos: true, python: 'python3.12')
 *
 * Installs Cautious into a virtual environment in the workspace (from a Python 3.11+ on the
 * agent), checks that a Docker engine answers, and sets env.CAUTIOUS_CLI to the installed
 * `cautious` so that cautiousRollout and cautiousGameday use it. Returns that path.
 *
 * By default it installs the suite from this library's own repository at the version Jenkins
 * loaded the library at (`@Library('cautious@v0.2.0')` installs 0.2.0), so the steps and the
 * suite always match; no package index serves Cautious. Parameters: see cautiousSetup.txt.
 */
def call(Map args = [:]) {
    List<String> known = ['python', 'package', 'chaos', 'venv', 'checkDocker', 'version', 'repository', 'library']
    for (Object key : args.keySet()) {
        if (!known.contains(key.toString())) {
            error("cautiousSetup: unknown parameter ${key}; known: ${known.join(', ')}")
        }
    }
    String venv = args.venv ?: '.cautious-venv'
    boolean checkDocker = args.containsKey('checkDocker') ? args.checkDocker as boolean : true
    boolean chaos = args.chaos as boolean
    String repository = args.repository ?: CautiousCommand.SUITE_REPOSITORY
    // Jenkins sets library.NAME.version for every library a build loaded.
    String version = args.version ?: env["library.${args.library ?: 'cautious'}.version".toString()]
    if (!version && (!args.package || chaos)) {
        error("cautiousSetup: which version of Cautious? The library was not loaded as " +
            "'${args.library ?: 'cautious'}' (env library.NAME.version); pass library: 'NAME' or version: 'v0.2.0'")
    }
    String suite = null
    String extension = ''
    try {
        suite = args.package ?: CautiousCommand.suitePackage(repository, version)
        extension = chaos ? CautiousCommand.suitePackage(repository, version, 'chaos') : ''
    } catch (IllegalArgumentException bad) {
        error("cautiousSetup: ${bad.message}")
    }
    // Values reach the script through the environment, never pasted into it.
    withEnv([
        "CAUTIOUS_PYTHON=${args.python ?: 'python3'}",
        "CAUTIOUS_PACKAGE=${suite}",
        "CAUTIOUS_CHAOS_PACKAGE=${extension}",
        "CAUTIOUS_VENV=${venv}",
        "CAUTIOUS_CHECK_DOCKER=${checkDocker}",
    ]) {
        sh(script: libraryResource('io/cautious/jenkins/setup.sh'), label: 'cautious setup')
    }
    String cli = "${venv}/bin/cautious".toString()
    env.CAUTIOUS_CLI = cli
    return cli
}
