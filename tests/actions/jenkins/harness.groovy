// Runs the Jenkins shared library (actions/jenkins) with stubbed Jenkins steps, and the example
// declarative Jenkinsfile with a small interpreter of the declarative syntax.
//
//   JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 groovy tests/actions/jenkins/harness.groovy \
//       actions/jenkins tests/actions/jenkins/stubs
//
// The second folder holds stand-ins for the Jenkins classes the library imports (@NonCPS).
//
// Prints "ok - NAME" / "not ok - NAME: why" per test and a closing line "N passed, N failed";
// exits 1 when a test failed. Groovy 2.4, the language level Jenkins runs.

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

/** What `error` (and a failing `sh`) throw in Jenkins: hudson.AbortException. */
class BuildFailed extends RuntimeException {
    BuildFailed(String message) { super(message) }
}

/** The fake Jenkins: a workspace folder, the calls made, the environment, the build result. */
class FakeJenkins {
    File library
    File workspace
    List<Map> calls = []
    Map env = [BUILD_NUMBER: '42', BRANCH_NAME: 'main']
    Map params = [:]
    String cwd = ''
    List<String> causes = ['SCMTrigger']
    String result = 'SUCCESS'
    /** Scenario: what a command does in the workspace; returns its exit code. */
    Closure onSh = { String script, File folder -> 0 }

    File folder() { cwd ? new File(workspace, cwd) : workspace }

    void record(String step, Map args) { calls << ([step: step] + args) }

    List<Map> callsOf(String step) { calls.findAll { it.step == step } }

    List<String> shScripts() { callsOf('sh').collect { it.script as String } }

    Binding binding() {
        FakeJenkins jenkins = this
        Binding binding = new Binding()
        binding.setVariable('env', env)
        binding.setVariable('params', params)
        binding.setVariable('sh', { Object arg ->
            Map args = arg instanceof Map ? (Map) arg : [script: arg.toString()]
            String script = args.script.toString()
            jenkins.record('sh', [script: script, cwd: jenkins.cwd, returnStatus: args.returnStatus ?: false, env: new LinkedHashMap(jenkins.env)])
            int status = jenkins.onSh.call(script, jenkins.folder()) as int
            if (args.returnStatus) {
                return status
            }
            if (status != 0) {
                throw new BuildFailed("script returned exit code ${status}")
            }
            return null
        })
        binding.setVariable('junit', { Map args -> jenkins.record('junit', [testResults: args.testResults.toString(), cwd: jenkins.cwd]) })
        binding.setVariable('archiveArtifacts', { Map args ->
            jenkins.record('archiveArtifacts', [artifacts: args.artifacts.toString(), allowEmptyArchive: args.allowEmptyArchive, cwd: jenkins.cwd])
        })
        binding.setVariable('fileExists', { Object path -> new File(jenkins.folder(), path.toString()).exists() })
        binding.setVariable('readFile', { Object path ->
            jenkins.record('readFile', [file: path.toString(), cwd: jenkins.cwd])
            new File(jenkins.folder(), path.toString()).text
        })
        binding.setVariable('readJSON', { Map args ->
            jenkins.record('readJSON', [file: args.file.toString(), returnPojo: args.returnPojo])
            new JsonSlurper().parse(new File(jenkins.folder(), args.file.toString()))
        })
        binding.setVariable('error', { Object message ->
            jenkins.record('error', [message: message.toString()])
            throw new BuildFailed(message.toString())
        })
        binding.setVariable('unstable', { Object message ->
            jenkins.record('unstable', [message: message.toString()])
            if (jenkins.result == 'SUCCESS') {
                jenkins.result = 'UNSTABLE'
            }
        })
        binding.setVariable('echo', { Object message -> jenkins.record('echo', [message: message.toString()]) })
        binding.setVariable('dir', { Object path, Closure body ->
            String saved = jenkins.cwd
            jenkins.cwd = saved ? "${saved}/${path}".toString() : path.toString()
            jenkins.record('dir', [path: jenkins.cwd])
            try {
                return body.call()
            } finally {
                jenkins.cwd = saved
            }
        })
        binding.setVariable('withEnv', { List pairs, Closure body ->
            Map saved = new LinkedHashMap(jenkins.env)
            jenkins.record('withEnv', [pairs: pairs.collect { it.toString() }])
            for (Object pair : pairs) {
                List<String> parts = pair.toString().split('=', 2) as List
                jenkins.env[parts[0]] = parts[1]
            }
            try {
                return body.call()
            } finally {
                jenkins.env.clear()
                jenkins.env.putAll(saved)
            }
        })
        binding.setVariable('libraryResource', { Object path ->
            jenkins.record('libraryResource', [path: path.toString()])
            return new File(jenkins.library, "resources/${path}").text
        })
        binding.setVariable('script', { Closure body -> body.call() })
        return binding
    }
}

/** A small interpreter of declarative Pipeline: the sections the example uses. */
class Declarative {
    FakeJenkins dslJenkins
    List<String> dslCrons = []
    List<Map> dslStages = []
    Map<String, Closure> dslPost = [:]
    List<String> dslRan = []
    List<String> dslSkipped = []
    String dslFailure = null

    static void delegateTo(Closure body, Object delegate) {
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.delegate = delegate
        body.call()
    }

    void pipeline(Closure body) {
        delegateTo(body, this)
        execute()
    }

    void agent(Closure body) { }
    void options(Closure body) { }
    void triggers(Closure body) { delegateTo(body, new Triggers(crons: dslCrons)) }
    void parameters(Closure body) { delegateTo(body, new Parameters(params: dslJenkins.params)) }
    void stages(Closure body) { delegateTo(body, new Stages(stages: dslStages)) }
    void post(Closure body) { delegateTo(body, new Post(post: dslPost)) }

    private void execute() {
        for (Map stage : dslStages) {
            if (dslFailure != null) {
                dslSkipped << (stage.name as String)
                continue
            }
            if (stage.when != null && !When.holds((Closure) stage.when, dslJenkins)) {
                dslSkipped << (stage.name as String)
                continue
            }
            dslRan << (stage.name as String)
            try {
                ((Closure) stage.steps).call()
            } catch (BuildFailed failed) {
                dslFailure = failed.message
                dslJenkins.result = 'FAILURE'
            }
        }
        List<String> order = ['always', dslJenkins.result == 'SUCCESS' ? 'success' : dslJenkins.result.toLowerCase(), 'cleanup']
        for (String condition : order) {
            if (dslPost[condition] != null) {
                dslPost[condition].call()
            }
        }
    }
}

class Triggers {
    List<String> crons
    void cron(String spec) { crons << spec }
}

class Parameters {
    Map params
    void string(Map args) {
        if (!params.containsKey(args.name)) {
            params[args.name] = args.defaultValue
        }
    }
}

class Stages {
    List<Map> stages
    void stage(String name, Closure body) {
        Map stage = [name: name]
        Declarative.delegateTo(body, new Stage(stage: stage))
        stages << stage
    }
}

class Stage {
    Map stage
    void when(Closure body) { stage.when = body }
    void steps(Closure body) { stage.steps = body }
}

class Post {
    Map post
    void always(Closure body) { post.always = body }
    void success(Closure body) { post.success = body }
    void failure(Closure body) { post.failure = body }
    void unstable(Closure body) { post.unstable = body }
    void cleanup(Closure body) { post.cleanup = body }
}

/** Evaluates a `when` block: every condition in a block must hold (as in Jenkins). */
class When {
    FakeJenkins jenkins
    List<Boolean> results = []

    static boolean holds(Closure body, FakeJenkins jenkins) {
        When when = new When(jenkins: jenkins)
        Closure copy = (Closure) body.clone()
        Declarative.delegateTo(copy, when)
        return when.results.every { it }
    }

    void triggeredBy(String cause) { results << jenkins.causes.contains(cause) }
    void branch(String name) { results << (jenkins.env.BRANCH_NAME == name) }
    void not(Closure body) { results << !holds(body, jenkins) }
    void allOf(Closure body) { results << holds(body, jenkins) }
    void anyOf(Closure body) {
        When inner = new When(jenkins: jenkins)
        Declarative.delegateTo((Closure) body.clone(), inner)
        results << inner.results.any { it }
    }
    void expression(Closure body) { results << (body.call() as boolean) }
}

// -- the library under test ---------------------------------------------------------------------

File library = new File(args ? args[0] : 'actions/jenkins').canonicalFile
File jenkinsStubs = new File(args && args.length > 1 ? args[1] : 'tests/actions/jenkins/stubs').canonicalFile
File workspaces = File.createTempDir('cautious-jenkins', '')

/** A fresh fake Jenkins with the library's vars loaded, as Jenkins does for `@Library`. */
Closure newJenkins = { ->
    FakeJenkins jenkins = new FakeJenkins(library: library, workspace: java.nio.file.Files.createTempDirectory(workspaces.toPath(), 'ws').toFile())
    Binding binding = jenkins.binding()
    GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader)
    loader.addClasspath(jenkinsStubs.path)
    loader.addClasspath(new File(library, 'src').path)
    GroovyShell shell = new GroovyShell(loader, binding)
    Map vars = [:]
    new File(library, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { File file ->
        Script script = shell.parse(file)
        String name = file.name - '.groovy'
        vars[name] = script
        binding.setVariable(name, { Object[] callArgs -> script.invokeMethod('call', callArgs) })
    }
    return [jenkins: jenkins, shell: shell, vars: vars, binding: binding]
}

/** A report folder as `cautious deploy --report-dir DIR` leaves it. */
void writeReport(File folder, String reportDir, String verdict, List<Map> claims, Map extra = [:]) {
    File out = new File(folder, reportDir)
    out.mkdirs()
    Map report = [
        schema_version: 1, verdict: verdict, verdict_reason: verdict == 'pass' ? 'all claims hold' : 'a claim failed',
        claims: claims, availability: [success_ratio: verdict == 'pass' ? 1.0 : 0.951, sent: 1000, failed: 49],
        rollout: [strategy: 'rolling', from_release: 'v1', to_release: 'v2', outcome: 'succeeded'],
    ] + extra
    new File(out, 'report.json').text = JsonOutput.toJson(report)
    new File(out, 'junit.xml').text = '<testsuite name="cautious"/>'
    new File(out, 'report.md').text = "## Cautious: ${verdict}\n"
}

List<Map> passingClaims = [[name: 'success_ratio', target: 0.999, measured: 1.0, verdict: 'pass', detail: 'measured 100 %']]
List<Map> failingClaims = [
    [name: 'success_ratio', target: 0.999, measured: 0.951, verdict: 'fail', detail: 'measured 95.1 %, claimed >= 99.9 %'],
    [name: 'p99_ms', target: 300, measured: 40, verdict: 'pass', detail: 'measured 40 ms'],
]

/** The words a command line gives a real POSIX shell (proves the quoting). */
List<String> shellWords(String command) {
    Process process = ['sh', '-c', 'set -- ' + command + '; for a in "$@"; do printf "%s\\n" "[$a]"; done'].execute()
    process.waitFor()
    assert process.exitValue() == 0 : process.err.text
    return process.in.text.readLines()
}

/** Run body, expecting the build to fail; returns the failure message. */
String expectFailure(Closure body) {
    try {
        body.call()
    } catch (BuildFailed failed) {
        return failed.message
    }
    assert false : 'the build should have failed'
}

// -- tests --------------------------------------------------------------------------------------

Map tests = [:]

tests['cautiousRollout runs deploy, publishes junit.xml, archives the report and returns the verdict'] = {
    Map j = newJenkins()
    FakeJenkins jenkins = j.jenkins
    jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/rollout-42', 'pass', passingClaims)
        0
    }
    Map result = j.vars.cautiousRollout.call(release: 'v2', strategy: 'rolling', claims: [success_ratio: 0.999, p99_ms: 300])
    assert jenkins.shScripts() == ['cautious deploy --strategy rolling --release v2 --claim success_ratio=0.999 --claim p99_ms=300 --report-dir cautious-reports/rollout-42']
    assert jenkins.callsOf('sh')[0].returnStatus == true
    assert jenkins.callsOf('junit')*.testResults == ['cautious-reports/rollout-42/junit.xml']
    assert jenkins.callsOf('archiveArtifacts')*.artifacts == ['cautious-reports/rollout-42/**']
    assert jenkins.callsOf('error') == [] && jenkins.callsOf('unstable') == []
    assert result.verdict == 'pass' && result.passed && result.exitCode == 0
    assert result.successRatio == 1.0d && result.reportDir == 'cautious-reports/rollout-42'
    assert jenkins.callsOf('readJSON') == [[step: 'readJSON', file: 'cautious-reports/rollout-42/report.json', returnPojo: true]]
}

tests['a failed claim publishes junit.xml, archives the report, then fails the build naming the claim'] = {
    Map j = newJenkins()
    FakeJenkins jenkins = j.jenkins
    jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/rollout-42', 'fail', failingClaims)
        1
    }
    String message = expectFailure { j.vars.cautiousRollout.call(release: 'errors-5pct') }
    assert message.contains('claim success_ratio: measured 95.1 %')
    assert !message.contains('p99_ms')
    List<String> order = jenkins.calls*.step.findAll { it in ['sh', 'junit', 'archiveArtifacts', 'error'] }
    assert order == ['sh', 'junit', 'archiveArtifacts', 'error']
    assert jenkins.shScripts() == ['cautious deploy --release errors-5pct --report-dir cautious-reports/rollout-42']
}

tests['a rollback fails the build even when no claim failed'] = {
    Map j = newJenkins()
    j.jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/rollout-42', 'fail', passingClaims,
            [rollout: [strategy: 'rolling', from_release: 'v1', to_release: 'crash-on-start', outcome: 'rolled-back', reason: 'sample-1 never became ready']])
        1
    }
    String message = expectFailure { j.vars.cautiousRollout.call(release: 'crash-on-start') }
    assert message.contains('rollout v1 -> crash-on-start rolled-back: sample-1 never became ready')
}

tests['bad input (exit 2, no report) fails the build without publishing tests'] = {
    Map j = newJenkins()
    j.jenkins.onSh = { String script, File folder -> 2 }
    String message = expectFailure { j.vars.cautiousRollout.call(config: 'missing.yaml') }
    assert message.contains('cautious deploy exited with 2 and wrote no report.json')
    assert j.jenkins.callsOf('junit') == []
    assert j.jenkins.callsOf('archiveArtifacts')[0].allowEmptyArchive == true
}

tests['failOnClaim: false marks the build unstable instead'] = {
    Map j = newJenkins()
    j.jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/rollout-42', 'fail', failingClaims)
        1
    }
    Map result = j.vars.cautiousRollout.call(failOnClaim: false)
    assert j.jenkins.result == 'UNSTABLE'
    assert result.verdict == 'fail' && result.failedClaims == ['success_ratio'] && !result.passed
    assert j.jenkins.callsOf('error') == []
}

tests['parameters are quoted: a real shell sees each value as one word'] = {
    Map j = newJenkins()
    j.jenkins.onSh = { String script, File folder -> 2 }
    String release = "v2'; touch /tmp/cautious-pwned #"
    expectFailure { j.vars.cautiousRollout.call(release: release, reportDir: 'my reports/run 1', config: 'ci/cautious $HOME.yaml') }
    String command = j.jenkins.shScripts()[0]
    assert shellWords(command) == [
        '[cautious]', '[deploy]', '[--config]', '[ci/cautious $HOME.yaml]', '[--release]', "[${release}]".toString(),
        '[--report-dir]', '[my reports/run 1]',
    ]
    assert !new File('/tmp/cautious-pwned').exists()
}

tests['claims as a Map, a List or a String give the same command'] = {
    List<String> commands = []
    for (Object claims : [[success_ratio: 0.999, p99_ms: 300], ['success_ratio=0.999', 'p99_ms=300'], 'success_ratio=0.999, p99_ms=300']) {
        Map j = newJenkins()
        j.jenkins.onSh = { String script, File folder -> 2 }
        expectFailure { j.vars.cautiousRollout.call(claims: claims) }
        commands << j.jenkins.shScripts()[0]
    }
    assert commands.unique().size() == 1
    assert commands[0].contains('--claim success_ratio=0.999 --claim p99_ms=300')
}

tests['a bad claim, strategy or parameter name fails before anything runs'] = {
    Map cases = [
        'claims: \'success_ratio\' is not NAME=VALUE': [claims: 'success_ratio'],
        'claims: \'x=1;reboot=2 y\'': [claims: ['x=1;reboot=2 y']],
        "strategy: 'yolo'": [strategy: 'yolo'],
        'unknown parameter(s) relase': [relase: 'v2'],
    ]
    cases.each { String expected, Map arguments ->
        Map j = newJenkins()
        String message = expectFailure { j.vars.cautiousRollout.call(arguments) }
        assert message.startsWith('cautiousRollout: ') && message.contains(expected) : message
        assert j.jenkins.callsOf('sh') == []
    }
}

tests['workingDirectory runs everything inside dir()'] = {
    Map j = newJenkins()
    j.jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/rollout-42', 'pass', passingClaims)
        0
    }
    j.vars.cautiousRollout.call(workingDirectory: 'service')
    assert j.jenkins.callsOf('sh')[0].cwd == 'service'
    assert j.jenkins.callsOf('junit')[0].cwd == 'service'
    assert j.jenkins.callsOf('archiveArtifacts')[0].cwd == 'service'
    assert new File(j.jenkins.workspace, 'service/cautious-reports/rollout-42/report.json').exists()
}

tests['cautiousGameday runs a suite or one experiment and fails on a deviated experiment'] = {
    Map j = newJenkins()
    j.jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/gameday-42', 'pass', [])
        0
    }
    Map result = j.vars.cautiousGameday.call(suite: 'chaos/gameday.yaml')
    assert result.passed
    assert j.jenkins.shScripts() == ['cautious gameday --suite chaos/gameday.yaml --report-dir cautious-reports/gameday-42']
    assert j.jenkins.callsOf('junit')*.testResults == ['cautious-reports/gameday-42/junit.xml']

    Map k = newJenkins()
    k.jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'gd', 'fail', [], [rollout: null, experiments: [
            [name: 'kill-mid-rollout', status: 'completed', deviated: true],
            [name: 'rolling-under-load', status: 'completed', deviated: false],
        ]])
        1
    }
    String message = expectFailure { k.vars.cautiousGameday.call(experiment: 'chaos/experiments/kill-mid-rollout.json', reportDir: 'gd') }
    assert k.jenkins.shScripts() == ['cautious chaos.run chaos/experiments/kill-mid-rollout.json --report-dir gd']
    assert message.contains('experiment kill-mid-rollout: completed (deviated)')
    assert !message.contains('rolling-under-load')

    Map both = newJenkins()
    assert expectFailure { both.vars.cautiousGameday.call(suite: 's', experiment: 'e') }.contains('not both')
}

tests['cautiousSetup installs through the environment and sets env.CAUTIOUS_CLI for the other steps'] = {
    Map j = newJenkins()
    String cli = j.vars.cautiousSetup.call(package: 'cautious==0.1.0; echo pwned')
    assert cli == '.cautious-venv/bin/cautious' && j.jenkins.env.CAUTIOUS_CLI == cli
    Map sh = j.jenkins.callsOf('sh')[0]
    assert sh.script == new File(library, 'resources/io/cautious/jenkins/setup.sh').text
    assert sh.env.CAUTIOUS_PACKAGE == 'cautious==0.1.0; echo pwned' && sh.env.CAUTIOUS_PYTHON == 'python3'
    assert sh.env.CAUTIOUS_CHAOS_PACKAGE == ''
    assert sh.env.CAUTIOUS_VENV == '.cautious-venv' && sh.env.CAUTIOUS_CHECK_DOCKER == 'true'
    j.jenkins.onSh = { String script, File folder -> 2 }
    expectFailure { j.vars.cautiousRollout.call() }
    assert j.jenkins.shScripts()[1].startsWith('.cautious-venv/bin/cautious deploy ')
    assert expectFailure { newJenkins().vars.cautiousSetup.call(pakage: 'x') }.contains('unknown parameter pakage')
}

tests["cautiousSetup installs the suite from the library's own repository at the library's version"] = {
    String repository = 'https://github.com/your-org/cautious.git'
    Map j = newJenkins()
    j.jenkins.env['library.cautious.version'] = 'v0.2.0'  // what @Library('cautious@v0.2.0') sets
    j.vars.cautiousSetup.call(chaos: true)
    Map sh = j.jenkins.callsOf('sh')[0]
    assert sh.env.CAUTIOUS_PACKAGE == "git+${repository}@v0.2.0".toString()
    assert sh.env.CAUTIOUS_CHAOS_PACKAGE == "git+${repository}@v0.2.0#subdirectory=chaos".toString()

    Map renamed = newJenkins()
    renamed.jenkins.env['library.ci-tools.version'] = 'v0.3.1'
    renamed.vars.cautiousSetup.call(library: 'ci-tools', repository: 'https://git.example/cautious.git')
    assert renamed.jenkins.callsOf('sh')[0].env.CAUTIOUS_PACKAGE == 'git+https://git.example/cautious.git@v0.3.1'

    Map pinned = newJenkins()
    pinned.vars.cautiousSetup.call(version: '0123abc')
    assert pinned.jenkins.callsOf('sh')[0].env.CAUTIOUS_PACKAGE == "git+${repository}@0123abc".toString()
}

tests['cautiousSetup refuses to guess a version or take one that is not a git ref'] = {
    Map j = newJenkins()
    String message = expectFailure { j.vars.cautiousSetup.call() }
    assert message.startsWith("cautiousSetup: which version of Cautious?") && message.contains("version: 'v0.2.0'")
    assert j.jenkins.callsOf('sh') == []
    Map k = newJenkins()
    assert expectFailure { k.vars.cautiousSetup.call(version: 'v1 --index-url=http://evil') }.contains('is not a git tag')
    assert k.jenkins.callsOf('sh') == []
}

tests['a failed claim names its line in cautious.yaml, in the message and in annotations'] = {
    Map j = newJenkins()
    FakeJenkins jenkins = j.jenkins
    new File(jenkins.workspace, 'service').mkdirs()
    new File(jenkins.workspace, 'service/cautious.yaml').text = 'service:\n  name: x\nclaims:\n  p99_ms: 300\n  success_ratio: 0.999\n'
    jenkins.onSh = { String script, File folder ->
        writeReport(folder, 'cautious-reports/rollout-42', 'fail', failingClaims + [
            [name: 'failed_requests', target: 0, measured: 3, verdict: 'fail', detail: 'measured 3'],
        ])
        1
    }
    Map result = j.vars.cautiousRollout.call(workingDirectory: 'service', failOnClaim: false)
    assert result.failures == [
        'cautious.yaml:5: claim success_ratio: measured 95.1 %, claimed >= 99.9 %',
        'cautious.yaml:3: claim failed_requests: measured 3',
    ]
    assert result.annotations == [
        [file: 'cautious.yaml', line: 5, title: 'claim success_ratio', message: 'claim success_ratio: measured 95.1 %, claimed >= 99.9 %'],
        [file: 'cautious.yaml', line: 3, title: 'claim failed_requests', message: 'claim failed_requests: measured 3'],
    ]
    assert jenkins.callsOf('readFile') == [[step: 'readFile', file: 'cautious.yaml', cwd: 'service']]
    assert jenkins.callsOf('junit')*.testResults == ['cautious-reports/rollout-42/junit.xml']
    assert jenkins.callsOf('unstable')[0].message.contains('cautious.yaml:5: claim success_ratio')

    Map k = newJenkins()  // a config elsewhere, or none: named as given, or no line at all
    new File(k.jenkins.workspace, 'ci').mkdirs()
    new File(k.jenkins.workspace, 'ci/svc.yaml').text = 'claims: {success_ratio: 0.999}\n'
    k.jenkins.onSh = { String script, File folder -> writeReport(folder, 'r', 'fail', failingClaims); 1 }
    assert k.vars.cautiousRollout.call(config: 'ci/svc.yaml', reportDir: 'r', failOnClaim: false).failures ==
        ['ci/svc.yaml:1: claim success_ratio: measured 95.1 %, claimed >= 99.9 %']
    Map none = newJenkins()
    none.jenkins.onSh = { String script, File folder -> writeReport(folder, 'r', 'fail', failingClaims); 1 }
    Map bare = none.vars.cautiousRollout.call(reportDir: 'r', failOnClaim: false)
    assert bare.failures == ['claim success_ratio: measured 95.1 %, claimed >= 99.9 %'] && bare.annotations == []
}

// -- the example Jenkinsfile --------------------------------------------------------------------

File jenkinsfile = new File(library, 'examples/Jenkinsfile')

/** Run the example Jenkinsfile in a fresh fake Jenkins; returns [jenkins, dsl]. */
Closure runJenkinsfile = { List<String> causes, Closure onSh ->
    Map j = newJenkins()
    FakeJenkins jenkins = j.jenkins
    jenkins.causes = causes
    jenkins.onSh = onSh
    jenkins.env['library.cautious.version'] = 'main'  // @Library('cautious'): the default version
    Declarative dsl = new Declarative(dslJenkins: jenkins)
    j.binding.setVariable('pipeline', { Closure body -> dsl.pipeline(body) })
    String text = jenkinsfile.text
    assert text =~ /(?m)^@Library\('cautious'\) _$/
    // Jenkins resolves @Library itself; here the vars are already bound.
    Script script = j.shell.parse(text.replaceFirst(/(?m)^@Library\('cautious'\) _$/, ''), 'Jenkinsfile')
    script.run()
    return [jenkins: jenkins, dsl: dsl]
}

Closure deployPasses = { String script, File folder ->
    if (script.contains(' deploy ')) {
        writeReport(folder, 'cautious-reports/rollout-42', 'pass', passingClaims)
    }
    0
}

tests['Jenkinsfile: a push runs setup, the sandbox rollout, then the production deploy'] = {
    Map run = runJenkinsfile(['SCMTrigger'], deployPasses)
    FakeJenkins jenkins = run.jenkins
    Declarative dsl = run.dsl
    assert dsl.dslCrons == ['H 3 * * 1']
    assert dsl.dslRan == ['Set up Cautious', 'Sandbox rollout', 'Deploy to production']
    assert dsl.dslSkipped == ['Chaos game day']
    List<String> scripts = jenkins.shScripts()
    assert scripts[0].startsWith('#!/usr/bin/env bash')
    assert scripts[1..-1] == [
        '.cautious-venv/bin/cautious deploy --strategy rolling --claim success_ratio=0.999 --claim longest_error_window_s=1 --report-dir cautious-reports/rollout-42',
        './deploy-to-production.sh',
        '"${CAUTIOUS_CLI:-cautious}" sandbox.down || true',
    ]
    assert jenkins.callsOf('junit')*.testResults == ['cautious-reports/rollout-42/junit.xml']
    assert jenkins.result == 'SUCCESS'
}

tests['Jenkinsfile: a failed claim fails the build and production is not deployed'] = {
    Map run = runJenkinsfile(['SCMTrigger'], { String script, File folder ->
        if (script.contains(' deploy ')) {
            writeReport(folder, 'cautious-reports/rollout-42', 'fail', failingClaims)
            return 1
        }
        0
    })
    FakeJenkins jenkins = run.jenkins
    Declarative dsl = run.dsl
    assert jenkins.result == 'FAILURE'
    assert dsl.dslFailure.contains('claim success_ratio')
    assert dsl.dslRan == ['Set up Cautious', 'Sandbox rollout']
    assert 'Deploy to production' in dsl.dslSkipped
    assert !jenkins.shScripts().contains('./deploy-to-production.sh')
    assert jenkins.shScripts()[-1] == '"${CAUTIOUS_CLI:-cautious}" sandbox.down || true'
    assert jenkins.callsOf('junit').size() == 1
}

tests['Jenkinsfile: the cron trigger runs the game day instead of a rollout'] = {
    Map run = runJenkinsfile(['TimerTrigger'], { String script, File folder ->
        if (script.contains(' gameday ')) {
            writeReport(folder, 'cautious-reports/gameday-42', 'pass', [])
        }
        0
    })
    Declarative dsl = run.dsl
    assert dsl.dslRan == ['Set up Cautious', 'Chaos game day']
    assert dsl.dslSkipped == ['Sandbox rollout', 'Deploy to production']
    assert run.jenkins.shScripts()[1] == '.cautious-venv/bin/cautious gameday --report-dir cautious-reports/gameday-42'
    assert run.jenkins.result == 'SUCCESS'
}

// -- run ----------------------------------------------------------------------------------------

int passed = 0
int failed = 0
tests.each { String name, Closure test ->
    try {
        test.call()
        passed++
        println "ok - ${name}"
    } catch (Throwable problem) {
        failed++
        println "not ok - ${name}: ${problem.class.simpleName}: ${problem.message}"
    }
}
workspaces.deleteDir()
println "${passed} passed, ${failed} failed"
System.exit(failed ? 1 : 0)
