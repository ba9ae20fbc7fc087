//! Tests of the simulated container shell: builtins, the script parser,
//! the REPL, the TTY line discipline and `tar` as `kubectl cp` drives it.

use super::*;
use crate::sim::podfs::strftime;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

fn new_fs() -> Arc<Mutex<PodFs>> {
    Arc::new(Mutex::new(PodFs::default()))
}

fn env_with(fs: &Arc<Mutex<PodFs>>) -> ExecEnv {
    ExecEnv { env: vec![("APP".into(), "demo".into()), ("EMPTY".into(), String::new())], hostname: "web-0".into(), fs: fs.clone() }
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Runs argv without a tty; stdin (if given) is sent and then closed.
async fn run_in(fs: &Arc<Mutex<PodFs>>, a: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let (code, out, err) = run_raw(fs, a, stdin).await;
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

async fn run_raw(fs: &Arc<Mutex<PodFs>>, a: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, Vec<u8>) {
    let (otx, mut orx) = mpsc::channel(4);
    let (etx, mut erx) = mpsc::channel(4);
    let (_rtx, rrx) = watch::channel(None);
    let (itx, irx) = mpsc::channel(4);
    let io = ExecIo { stdin: stdin.map(|_| irx), stdout: otx, stderr: etx, resize: rrx, tty: false };
    let env = env_with(fs);
    let argv = argv(a);
    let task = tokio::spawn(async move { run(argv, &env, io).await });
    let data = stdin.map(|d| d.to_vec());
    let feed = async move {
        for c in data.unwrap_or_default().chunks(1000) {
            if itx.send(Bytes::copy_from_slice(c)).await.is_err() {
                break;
            }
        }
    };
    let (_, out, err) = timeout(T, async { tokio::join!(feed, drain(&mut orx), drain(&mut erx)) }).await.expect("command hung");
    (timeout(T, task).await.expect("run hung").expect("run panicked"), out, err)
}

async fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(b) = rx.recv().await {
        v.extend_from_slice(&b);
    }
    v
}

async fn sh(script: &str) -> (i32, String, String) {
    run_in(&new_fs(), &["sh", "-c", script], None).await
}

/// An interactive session with a tty.
struct Tty {
    tx: Option<mpsc::Sender<Bytes>>,
    out: mpsc::Receiver<Bytes>,
    seen: String,
    resize: watch::Sender<Option<(u16, u16)>>,
    task: JoinHandle<i32>,
}

impl Tty {
    fn start(a: &[&str]) -> Self {
        let (otx, out) = mpsc::channel(64);
        let (itx, irx) = mpsc::channel(64);
        let (resize, rrx) = watch::channel(None);
        let io = ExecIo { stdin: Some(irx), stdout: otx.clone(), stderr: otx, resize: rrx, tty: true };
        let env = env_with(&new_fs());
        let argv = argv(a);
        let task = tokio::spawn(async move { run(argv, &env, io).await });
        Tty { tx: Some(itx), out, seen: String::new(), resize, task }
    }
    async fn send(&self, s: &str) {
        self.tx.as_ref().expect("stdin open").send(Bytes::copy_from_slice(s.as_bytes())).await.expect("stdin send");
    }
    /// Waits until the output contains `needle`; returns everything seen and clears it.
    async fn expect(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + T;
        while !self.seen.contains(needle) {
            match tokio::time::timeout_at(deadline, self.out.recv()).await {
                Ok(Some(b)) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                _ => panic!("never saw {needle:?}; got {:?}", self.seen),
            }
        }
        std::mem::take(&mut self.seen)
    }
    async fn code(mut self) -> i32 {
        self.tx.take();
        timeout(T, self.task).await.expect("session hung").expect("panicked")
    }
}

#[tokio::test]
async fn echo_variants() {
    assert_eq!(sh("echo hello   world").await, (0, "hello world\n".into(), String::new()));
    assert_eq!(sh("echo -n a b").await.1, "a b");
    assert_eq!(sh(r"echo -e 'a\tb\nc'").await.1, "a\tb\nc\n");
    assert_eq!(sh("echo").await.1, "\n");
}

#[tokio::test]
async fn unknown_command_and_absolute_paths() {
    assert_eq!(sh("nosuch arg").await, (127, String::new(), "sh: nosuch: not found\n".into()));
    let fs = new_fs();
    assert_eq!(run_in(&fs, &["nosuch"], None).await.0, 127);
    assert_eq!(run_in(&fs, &["/bin/echo", "x"], None).await.1, "x\n");
    assert!(run_in(&fs, &["/usr/bin/env"], None).await.1.contains("APP=demo\n"));
    assert_eq!(run_in(&fs, &["/opt/app/echo"], None).await, (127, String::new(), "sh: /opt/app/echo: not found\n".into()));
    assert_eq!(run_in(&fs, &[], None).await.0, 0);
}

#[tokio::test]
async fn cat_stdin_files_and_errors() {
    let fs = new_fs();
    fs.lock().unwrap().write("/tmp/a", "file-a\n");
    assert_eq!(run_in(&fs, &["cat"], Some(b"from stdin")).await.1, "from stdin");
    assert_eq!(run_in(&fs, &["cat", "/tmp/a", "-", "/tmp/a"], Some(b"mid\n")).await.1, "file-a\nmid\nfile-a\n");
    let (code, out, err) = run_in(&fs, &["cat", "x", "/tmp/a"], None).await;
    assert_eq!((code, out.as_str(), err.as_str()), (1, "file-a\n", "cat: can't open 'x': No such file or directory\n"));
    assert_eq!(run_in(&fs, &["cat", "/tmp"], None).await.2, "cat: read error: Is a directory\n");
    let (code, _, err) = run_in(&fs, &["cat", "-z"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("Usage: cat"), "{err}");
    assert_eq!(run_in(&fs, &["cat"], None).await, (0, String::new(), String::new()));
}

#[tokio::test]
async fn env_and_printenv() {
    let (code, out, _) = sh("env").await;
    assert_eq!(code, 0);
    assert!(out.starts_with("APP=demo\nEMPTY=\n"), "{out}");
    for k in ["HOSTNAME=web-0\n", "HOME=/root\n", "PATH=/usr/local/sbin:"] {
        assert!(out.contains(k), "{k} missing in {out}");
    }
    assert!(!out.contains("TERM="));
    assert_eq!(sh("printenv APP HOSTNAME").await, (0, "demo\nweb-0\n".into(), String::new()));
    assert_eq!(sh("printenv APP NOPE").await.0, 1);
    assert_eq!(sh("env X=1 printenv X").await.1, "1\n");
    assert_eq!(sh("env -i").await.1, "");
    assert_eq!(sh("env -q").await.0, 1);
}

#[tokio::test]
async fn exit_codes() {
    assert_eq!(sh("exit 3").await.0, 3);
    assert_eq!(sh("exit 256").await.0, 0);
    assert_eq!(sh("exit -1").await.0, 255);
    assert_eq!(sh("false; exit").await.0, 1);
    assert_eq!(sh("exit abc").await, (2, String::new(), "sh: exit: Illegal number: abc\n".into()));
    assert_eq!(sh("true").await.0, 0);
    assert_eq!(sh("false").await.0, 1);
    assert_eq!(sh("exit 4; echo not reached").await, (4, String::new(), String::new()));
    assert_eq!(sh("echo x | exit 5; echo after").await.1, "after\n");
    assert_eq!(run_in(&new_fs(), &["exit", "7"], None).await.0, 7);
}

#[tokio::test]
async fn sleep_and_cancellation() {
    assert_eq!(sh("sleep 0.01 && sleep 0").await.0, 0);
    let (code, _, err) = sh("sleep abc").await;
    assert_eq!((code, err.as_str()), (1, "sleep: invalid number 'abc'\nUsage: sleep N[smhd]...\n"));
    assert_eq!(sh("sleep").await.0, 1);
    // Dropping the stdout receiver ends a long sleep promptly.
    let (otx, orx) = mpsc::channel(1);
    let (etx, _erx) = mpsc::channel(1);
    let (_rtx, rrx) = watch::channel(None);
    let io = ExecIo { stdin: None, stdout: otx, stderr: etx, resize: rrx, tty: false };
    let env = env_with(&new_fs());
    let task = tokio::spawn(async move { run(argv(&["sleep", "infinity"]), &env, io).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(orx);
    assert_eq!(timeout(Duration::from_secs(1), task).await.expect("sleep not cancelled").unwrap(), 141);
}

#[tokio::test]
async fn identity_builtins() {
    assert_eq!(sh("hostname; pwd; whoami; id").await.1, "web-0\n/\nroot\nuid=0(root) gid=0(root) groups=0(root)\n");
    assert_eq!(sh("cd /tmp && pwd; cd nope").await, (2, "/tmp\n".into(), "sh: cd: can't cd to nope: No such file or directory\n".into()));
    assert_eq!(sh("cd /var; cd log; pwd; cd; pwd").await.1, "/var/log\n/root\n");
    assert_eq!(sh("uname").await.1, "Linux\n");
    let date = sh("date").await.1;
    assert!(date.ends_with(" UTC 2026\n") || date.contains(" UTC 20"), "{date}");
    assert_eq!(sh("date -u +%Y").await.1.len(), 5);
    assert_eq!(strftime("%a %b %e %H:%M:%S %Z %Y", 0), "Thu Jan  1 00:00:00 UTC 1970");
    assert_eq!(strftime("%F %T %j", 951_825_600), "2000-02-29 12:00:00 060");
}

#[tokio::test]
async fn files_ls_mkdir_rm_touch() {
    let fs = new_fs();
    let (code, _, err) = run_in(&fs, &["sh", "-c", "mkdir -p /a/b/c && mkdir /x/y"], None).await;
    assert_eq!((code, err.as_str()), (1, "mkdir: can't create directory '/x/y': No such file or directory\n"));
    assert_eq!(run_in(&fs, &["mkdir", "/a"], None).await.2, "mkdir: can't create directory '/a': File exists\n");
    run_in(&fs, &["sh", "-c", "echo hi > /a/f; touch /a/t"], None).await;
    assert_eq!(run_in(&fs, &["ls", "/a"], None).await.1, "b\nf\nt\n");
    let long = run_in(&fs, &["ls", "-l", "/a/f"], None).await.1;
    assert!(long.starts_with("-rw-r--r--    1 root     root             3 "), "{long}");
    assert!(long.ends_with(" /a/f\n"), "{long}");
    assert!(run_in(&fs, &["ls", "-l", "/"], None).await.1.contains("drwxrwxrwt    2 root     root             0 "));
    assert_eq!(run_in(&fs, &["ls", "/a/f", "/nope"], None).await, (1, "/a/f\n".into(), "ls: /nope: No such file or directory\n".into()));
    assert_eq!(run_in(&fs, &["ls", "-z"], None).await.2, "ls: invalid option -- 'z'\nUsage: ls [-1alA] [FILE]...\n");
    assert_eq!(run_in(&fs, &["rm", "/a"], None).await, (1, String::new(), "rm: '/a' is a directory\n".into()));
    assert_eq!(run_in(&fs, &["rm", "/nope"], None).await.2, "rm: can't remove '/nope': No such file or directory\n");
    assert_eq!(run_in(&fs, &["rm", "-f", "/nope"], None).await.0, 0);
    assert_eq!(run_in(&fs, &["rm", "-rf", "/a"], None).await.0, 0);
    assert!(!fs.lock().unwrap().exists("/a/b/c"));
    assert_eq!(run_in(&fs, &["sh", "-c", "cd /tmp; touch rel; ls"], None).await.1, "rel\n");
}

#[tokio::test]
async fn test_builtin() {
    let fs = new_fs();
    fs.lock().unwrap().write("/etc/conf", "x");
    let t = |a: &'static str| {
        let fs = fs.clone();
        async move { run_in(&fs, &["sh", "-c", a], None).await.0 }
    };
    for dir in ["/", "/tmp", "/etc", "/root", "/var/log"] {
        assert_eq!(run_in(&fs, &["test", "-d", dir], None).await.0, 0, "{dir}");
    }
    assert_eq!(t("test -d /etc/conf").await, 1);
    assert_eq!(t("test -d /nope").await, 1);
    assert_eq!(t("[ -f /etc/conf ] && [ -e /etc ] && [ -s /etc/conf ]").await, 0);
    assert_eq!(t("[ -f /etc ]").await, 1);
    assert_eq!(t("[ -n \"$APP\" ] && [ -z \"$EMPTY\" ] && [ -z \"$UNSET\" ]").await, 0);
    assert_eq!(t("[ a = a ] && [ a != b ] && test 3 -lt 10 && [ ! -e /nope ]").await, 0);
    assert_eq!(t("[ a = b ]").await, 1);
    assert_eq!(t("[ -d /tmp -a -f /etc/conf ] && [ -d /nope -o -d /tmp ]").await, 0);
    assert_eq!(t("test").await, 1);
    assert_eq!(t("test x").await, 0);
    assert_eq!(sh("[ 1 = 1").await, (2, String::new(), "sh: [: missing ]\n".into()));
    assert_eq!(sh("test -q x").await, (2, String::new(), "sh: test: -q: unknown operand\n".into()));
}

#[tokio::test]
async fn head_tail_wc_seq() {
    assert_eq!(sh("seq 5 | head -n 2").await.1, "1\n2\n");
    assert_eq!(sh("seq 5 | head -2").await.1, "1\n2\n");
    assert_eq!(sh("seq 20 | head").await.1.lines().count(), 10);
    assert_eq!(sh("echo abcdef | head -c 3").await.1, "abc");
    assert_eq!(sh("seq 5 | tail -n 2").await.1, "4\n5\n");
    assert_eq!(sh("seq 5 | tail -n +4").await.1, "4\n5\n");
    assert_eq!(sh("echo abcdef | tail -c+3").await.1, "cdef\n");
    assert_eq!(sh("echo abcdef | tail -c +0").await.1, "abcdef\n");
    assert_eq!(sh("echo abcdef | tail -c 3").await.1, "ef\n");
    assert_eq!(sh("seq 3 | wc -l").await.1, "3\n");
    assert_eq!(sh("echo hello | wc -c").await.1, "6\n");
    assert_eq!(sh("echo a b | wc").await.1, "      1       2       4\n");
    assert_eq!(sh("seq 2 4; seq 5 -2 1").await.1, "2\n3\n4\n5\n3\n1\n");
    assert_eq!(sh("seq x").await.0, 1);
    assert_eq!(sh("head -q").await.0, 1);
    assert_eq!(sh("tail -é").await, (1, String::new(), "tail: invalid option -- 'é'\nUsage: tail [-n [+]N | -c [+]N] [FILE]...\n".into()));
    // A huge producer stops once its reader is gone.
    assert_eq!(sh("seq 100000000 | head -n 1").await, (0, "1\n".into(), String::new()));
    assert_eq!(sh("seq 300000 | tail -n 2; seq 300000 | tail -c 7").await.1, "299999\n300000\n300000\n");
    let (code, out, _) = run_in(&new_fs(), &["head", "-n", "1"], Some(b"one\ntwo\n")).await;
    assert_eq!((code, out.as_str()), (0, "one\n"));
}

#[tokio::test]
async fn stty_size() {
    assert_eq!(sh("stty size").await, (1, String::new(), "stty: standard input: Not a tty\n".into()));
    let mut t = Tty::start(&["sh"]);
    t.expect("/ # ").await;
    t.resize.send(Some((120, 40))).unwrap();
    t.send("stty size\r").await;
    assert_eq!(t.expect("\r\n/ # ").await, "stty size\r\n40 120\r\n/ # ");
    t.send("exit\r").await;
    assert_eq!(t.code().await, 0);
}

#[tokio::test]
async fn script_operators_and_quotes() {
    assert_eq!(sh("echo a; echo b").await.1, "a\nb\n");
    assert_eq!(sh("true && echo y || echo n").await.1, "y\n");
    assert_eq!(sh("false && echo y || echo n").await.1, "n\n");
    assert_eq!(sh("false || false && echo no; echo $?").await.1, "1\n");
    assert_eq!(sh("echo 'a  $APP' \"b  $APP\" c\\ d \\$APP").await.1, "a  $APP b  demo c d $APP\n");
    assert_eq!(sh("echo \"q\\\"uote\" 'it''s' \"\" x").await.1, "q\"uote its  x\n");
    assert_eq!(sh("echo ${APP}x $APP.y $UNSET| cat").await.1, "demox demo.y\n");
    assert_eq!(sh("false; echo $?; echo $?").await.1, "1\n0\n");
    assert_eq!(sh("X='a  b'; echo $X; echo \"$X\"; Y=$X; echo \"$Y\"").await.1, "a b\na  b\na  b\n");
    assert_eq!(sh("echo # comment\necho two").await.1, "\ntwo\n");
    assert_eq!(sh("echo a\\\nb ~ ~/x").await.1, "ab /root /root/x\n");
    assert_eq!(sh("X=1 printenv X; echo ${X}-").await.1, "1\n-\n");
    assert_eq!(sh("! true; echo $?; ! false").await, (0, "1\n".into(), String::new()));
    assert_eq!(run_in(&new_fs(), &["sh", "-c", "echo $0 $1 $# \"$@\"", "n", "a", "b"], None).await.1, "n a 2 a b\n");
    assert_eq!(sh("echo $5 $$ $").await.1, "1 $\n");
}

#[tokio::test]
async fn pipes_and_redirects() {
    let fs = new_fs();
    let r = |s: &'static str| {
        let fs = fs.clone();
        async move { run_in(&fs, &["sh", "-c", s], None).await }
    };
    assert_eq!(r("echo hi | cat | cat").await.1, "hi\n");
    assert_eq!(r("echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f").await.1, "one\ntwo\n");
    assert_eq!(fs.lock().unwrap().read("/tmp/f"), Some(&b"one\ntwo\n"[..]));
    assert_eq!(r("echo over > /tmp/f; cat /tmp/f").await.1, "over\n");
    assert_eq!(r("cat /nope 2>&1 | wc -l").await.1, "1\n");
    assert_eq!(r("cat /nope 2>/tmp/err; cat /tmp/err").await.1, "cat: can't open '/nope': No such file or directory\n");
    assert_eq!(r("echo x >&2").await, (0, String::new(), "x\n".into()));
    assert_eq!(r("echo x > /dev/null; echo y 2>/dev/null").await.1, "y\n");
    assert_eq!(r("echo x > /nope/f").await, (1, String::new(), "sh: can't create /nope/f: nonexistent directory\n".into()));
    assert_eq!(r("echo x > /tmp").await.2, "sh: can't create /tmp: Is a directory\n");
    assert_eq!(r("cat < /nope").await, (1, String::new(), "sh: can't open '/nope': No such file or directory\n".into()));
    assert_eq!(r("false | true").await.0, 0);
    assert_eq!(r("true | false").await.0, 1);
    assert_eq!(r("cd /tmp; echo rel>g; cat /tmp/g").await.1, "rel\n");
}

#[tokio::test]
async fn syntax_errors() {
    for (s, msg) in [
        ("echo 'open", "unterminated quoted string"),
        ("echo \"open", "unterminated quoted string"),
        ("&& echo", "unexpected \"&&\""),
        ("echo a |", "unexpected end of file"),
        ("echo >", "unexpected end of file"),
        ("; echo", "unexpected \";\""),
        ("sleep 1 &", "unsupported: background jobs (&)"),
        ("(echo)", "unsupported: subshells (()"),
        ("echo $(id)", "unsupported: command substitution $(...)"),
        ("echo `id`", "unsupported: command substitution (`)"),
        ("case x in esac", "unsupported: 'case'"),
        ("fi", "unexpected \"fi\""),
        ("while true; do done", "unexpected \"done\""),
        ("if true; then echo x", "unexpected end of file"),
        ("if true; echo; fi", "unexpected \"fi\""),
        ("for 1 in x; do echo; done", "bad for loop variable"),
        ("for i in x; echo; done", "unexpected word"),
        ("while true; do :; done >/tmp/x", "unsupported: redirection of compound commands"),
        ("cat <<EOF", "unsupported redirection"),
        ("echo ${A-b}", "bad substitution"),
    ] {
        assert_eq!(sh(s).await, (2, String::new(), format!("sh: syntax error: {msg}\n")), "{s}");
    }
    assert_eq!(sh("").await.0, 0);
    assert_eq!(sh("echo if then").await.1, "if then\n");
    assert_eq!(run_in(&new_fs(), &["sh", "-c"], None).await.0, 2);
    assert_eq!(run_in(&new_fs(), &["sh", "-q"], None).await.0, 2);
}

#[tokio::test]
async fn compound_commands() {
    assert_eq!(sh("for i in 1 2 3; do echo $i; done").await.1, "1\n2\n3\n");
    assert_eq!(sh("X='p q'; for x in a \"b c\" $X; do echo \"[$x]\"; done").await.1, "[a]\n[b c]\n[p]\n[q]\n");
    assert_eq!(run_in(&new_fs(), &["sh", "-c", "for a; do echo $a; done", "sh", "x", "y"], None).await.1, "x\ny\n");
    assert_eq!(sh("seq 3 | while read n; do echo n=$n; done").await.1, "n=1\nn=2\nn=3\n");
    assert_eq!(sh("echo ' a b  c ' | while read x y; do echo \"$y|$x\"; done").await.1, "b  c|a\n");
    assert_eq!(sh("while true; do echo x; break; echo no; done; echo after").await.1, "x\nafter\n");
    assert_eq!(sh("for i in 1 2 3; do if [ $i = 2 ]; then continue; fi; echo $i; done").await.1, "1\n3\n");
    assert_eq!(sh("for a in 1 2; do for b in x y; do echo $a$b; break 2; done; done; echo end").await.1, "1x\nend\n");
    assert_eq!(sh("for a in 1 2; do for b in x y; do continue 2; echo no; done; echo no; done; echo end").await.1, "end\n");
    assert_eq!(sh("until false; do echo once; break; done").await.1, "once\n");
    assert_eq!(sh("if false; then echo a; elif true; then echo b; else echo c; fi").await.1, "b\n");
    assert_eq!(sh("if false\nthen echo a\nelse\n echo c\nfi").await.1, "c\n");
    assert_eq!(sh("if false; then echo a; fi; echo $?").await.1, "0\n");
    assert_eq!(sh("for i in 1 2; do exit 7; done; echo no").await, (7, String::new(), String::new()));
    assert_eq!(sh("break; continue; echo still").await.1, "still\n");
    assert_eq!(sh("exec echo hi; echo no").await.1, "hi\n");
    assert_eq!(sh("read x < /dev/null; echo $?").await.1, "1\n");
    // A pod-style endless loop stops once nobody reads its output.
    let (otx, mut orx) = mpsc::channel(1);
    let (etx, _erx) = mpsc::channel(1);
    let (_rtx, rrx) = watch::channel(None);
    let io = ExecIo { stdin: None, stdout: otx, stderr: etx, resize: rrx, tty: false };
    let env = env_with(&new_fs());
    let task = tokio::spawn(async move { run(argv(&["sh", "-c", "while true; do echo hi; sleep 0.001; done"]), &env, io).await });
    assert_eq!(orx.recv().await.unwrap(), "hi\n");
    assert_eq!(orx.recv().await.unwrap(), "hi\n");
    drop(orx);
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), 141);
    // A busy loop yields, so ^C still gets through.
    let mut t = Tty::start(&["sh", "-c", "while true; do :; done"]);
    t.send("\x03").await;
    t.expect("^C").await;
    assert_eq!(t.code().await, 130);
}

#[tokio::test]
async fn sh_variants() {
    let fs = new_fs();
    fs.lock().unwrap().write("/tmp/s.sh", "echo script $1\nexit 6\n");
    assert_eq!(run_in(&fs, &["/bin/sh", "/tmp/s.sh", "arg"], None).await, (6, "script arg\n".into(), String::new()));
    assert_eq!(run_in(&fs, &["sh", "/nope.sh"], None).await.0, 127);
    assert_eq!(run_in(&fs, &["bash", "-ec", "echo a; false; echo b"], None).await, (1, "a\n".into(), String::new()));
    assert_eq!(run_in(&fs, &["sh", "-c", "sh -c 'exit 9'; echo $?"], None).await.1, "9\n");
    assert!(wants_repl(&argv(&["sh"])) && wants_repl(&argv(&["/bin/bash", "-il"])));
    assert!(!wants_repl(&argv(&["sh", "-c", "x"])) && !wants_repl(&argv(&["sh", "f.sh"])) && !wants_repl(&argv(&["echo"])));
}

#[tokio::test]
async fn repl_without_tty() {
    assert_eq!(run_in(&new_fs(), &["sh"], Some(b"echo hi\nexit 4\necho no\n")).await, (4, "hi\n".into(), String::new()));
    assert_eq!(run_in(&new_fs(), &["sh"], Some(b"echo a\nfalse")).await, (1, "a\n".into(), String::new()));
    assert_eq!(run_in(&new_fs(), &["sh"], None).await.0, 0);
    // Commands share the shell's stdin.
    assert_eq!(run_in(&new_fs(), &["sh"], Some(b"head -n 1\nline\necho done\n")).await.1, "line\ndone\n");
    assert_eq!(run_in(&new_fs(), &["bash"], Some(b"echo 'x\nnosuch\n")).await, (2, String::new(), "sh: syntax error: unterminated quoted string\n".into()));
    assert_eq!(run_in(&new_fs(), &["sh"], Some(b"for i in 1 2\ndo echo $i\ndone\necho 'a\nb'\n")).await.1, "1\n2\na\nb\n");
}

#[tokio::test]
async fn tty_echo_and_prompt() {
    let mut t = Tty::start(&["sh"]);
    assert_eq!(t.expect("/ # ").await, "/ # ");
    t.send("echo hi\r").await;
    assert_eq!(t.expect("hi\r\n/ # ").await, "echo hi\r\nhi\r\n/ # ");
    t.send("echo hx\x7fi\x08\x08\x7f\r").await;
    assert_eq!(t.expect("/ # ").await, "echo hx\x08 \x08i\x08 \x08\x08 \x08\x08 \x08\r\n\r\n/ # ");
    t.send("echo junk\x15echo é\x7f\x1b\r").await;
    let s = t.expect("/ # ").await;
    assert!(s.starts_with("echo junk\x08 \x08\x08 \x08"), "{s:?}");
    assert!(s.ends_with("echo é\x08 \x08^[\r\n\x1b\r\n/ # "), "{s:?}");
    t.send("cd /root\rcd /tmp\r").await;
    t.expect("~ # ").await;
    t.expect("/tmp # ").await;
    t.send("env\r").await;
    assert!(t.expect("/tmp # ").await.contains("TERM=xterm\r\n"));
    t.send("for i in a b; do\r").await;
    assert_eq!(t.expect("> ").await, "for i in a b; do\r\n> ");
    t.send("echo \"$i\r").await;
    t.expect("> ").await;
    t.send("\"; done\r").await;
    assert_eq!(t.expect("/tmp # ").await, "\"; done\r\na\r\n\r\nb\r\n\r\n/tmp # ");
    t.send("if true\r").await;
    t.expect("> ").await;
    t.send("\x03").await;
    assert_eq!(t.expect("/tmp # ").await, "^C\r\n/tmp # ");
    t.send("echo $?\r").await;
    t.expect("130\r\n").await;
    t.send("exit 3\r").await;
    assert_eq!(t.code().await, 3);
}

#[tokio::test]
async fn tty_ctrl_c_interrupts() {
    let mut t = Tty::start(&["sh"]);
    t.expect("/ # ").await;
    t.send("sleep 100\r").await;
    t.expect("sleep 100\r\n").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let start = std::time::Instant::now();
    t.send("\x03").await;
    assert_eq!(t.expect("/ # ").await, "^C\r\n/ # ");
    assert!(start.elapsed() < Duration::from_secs(2));
    t.send("echo $?\r").await;
    assert_eq!(t.expect("/ # ").await, "echo $?\r\n130\r\n/ # ");
    t.send("abc\x03").await;
    assert_eq!(t.expect("/ # ").await, "abc^C\r\n/ # ");
    t.send("\x04").await;
    assert_eq!(t.code().await, 130);

    // A directly executed command with a tty is interrupted too.
    let mut t = Tty::start(&["sleep", "100"]);
    t.send("\x03").await;
    t.expect("^C\r\n").await;
    assert_eq!(t.code().await, 130);
}

#[tokio::test]
async fn tty_ctrl_d_and_cat() {
    let mut t = Tty::start(&["sh"]);
    t.expect("/ # ").await;
    t.send("cat\r").await;
    t.expect("cat\r\n").await;
    t.send("abc\r").await;
    assert_eq!(t.expect("abc\r\nabc\r\n").await, "abc\r\nabc\r\n");
    t.send("par\x04").await;
    t.expect("parpar").await;
    t.send("\x04").await;
    t.expect("/ # ").await;
    t.send("false\r").await;
    t.expect("/ # ").await;
    t.send("\x04").await;
    assert_eq!(t.code().await, 1);
    // Stdin closing (hangup) ends the shell as well; a half-typed line is dropped.
    let mut t = Tty::start(&["bash"]);
    t.expect("/ # ").await;
    t.send("exit 5").await;
    t.expect("exit 5").await;
    assert_eq!(t.code().await, 0);
    // ONLCR applies to program output of direct commands.
    let mut t = Tty::start(&["echo", "a\nb"]);
    assert_eq!(t.expect("b\r\n").await, "a\r\nb\r\n");
    assert_eq!(t.code().await, 0);
}

fn raw_entry(name: &[u8], data: &[u8], kind: tar::EntryType, mode: u32) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(kind);
    h.set_cksum();
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

#[tokio::test]
async fn tar_round_trip() {
    let src = new_fs();
    {
        let mut fs = src.lock().unwrap();
        fs.write("/data/a.txt", "alpha\n");
        fs.put("/data/sub/run.sh", b"#!/bin/sh\n".to_vec(), Some(0o755), Some(1_600_000_000), true).unwrap();
        fs.mkdir("/data/empty", false).unwrap();
        fs.write(&format!("/data/{}", "n".repeat(120)), vec![7u8; 3000]);
    }
    let (code, archive, err) = run_raw(&src, &["tar", "cf", "-", "/data"], None).await;
    assert_eq!((code, String::from_utf8_lossy(&err).as_ref()), (0, "tar: removing leading '/' from member names\n"));
    let mut names: Vec<String> = tar::Archive::new(&archive[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    names.sort();
    assert_eq!(names[..4], ["data/", "data/a.txt", "data/empty/", &("data/n".to_string() + &"n".repeat(119))]);
    assert!(names.iter().all(|n| n.starts_with("data")), "kubectl requires the prefix: {names:?}");
    let dst = new_fs();
    assert_eq!(run_in(&dst, &["tar", "-xmf", "-", "-C", "/restore"], Some(&archive)).await.0, 1);
    dst.lock().unwrap().mkdir("/restore", false).unwrap();
    assert_eq!(run_in(&dst, &["tar", "xf", "-", "-C", "/restore"], Some(&archive)).await, (0, String::new(), String::new()));
    {
        let fs = dst.lock().unwrap();
        assert_eq!(fs.read("/restore/data/a.txt"), Some(&b"alpha\n"[..]));
        let st = fs.stat("/restore/data/sub/run.sh").unwrap();
        assert_eq!((st.mode, st.mtime), (0o755, 1_600_000_000));
        assert!(fs.is_dir("/restore/data/empty"));
        assert_eq!(fs.read(&format!("/restore/data/{}", "n".repeat(120))).map(|d| d.len()), Some(3000));
    }
    // Verbose listing, listing, and tail-based resume as with `kubectl cp --retries`.
    assert!(run_in(&src, &["tar", "tf", "-"], Some(&archive)).await.1.contains("data/a.txt\n"));
    let (_, resumed, _) = run_raw(&src, &["sh", "-c", "tar cf - /data | tail -c+513"], None).await;
    assert_eq!(resumed, archive[512..]);
    let (code, rel, _) = run_raw(&src, &["sh", "-c", "cd /data && tar -cf - a.txt"], None).await;
    assert_eq!(code, 0);
    assert_eq!(tar::Archive::new(&rel[..]).entries().unwrap().count(), 1);
    assert_eq!(run_in(&src, &["tar", "cf", "-", "/nope"], None).await.0, 1);
    assert_eq!(run_in(&src, &["tar", "czf", "-", "/data"], None).await.0, 1);
    assert_eq!(run_in(&src, &["tar", "-cf"], None).await.2, "tar: option requires an argument -- 'f'\nUsage: tar -c|-x|-t [-vmo] [-f TARFILE] [-C DIR] [FILE]...\n");
}

#[tokio::test]
async fn tar_as_kubectl_copy_to_pod() {
    // kubectl's makeTar: no entry for non-empty dirs, names relative to -C,
    // an empty dir as a header named without trailing slash.
    let mut v = raw_entry(b"foo", b"", tar::EntryType::Directory, 0o40755);
    v.extend(raw_entry(b"dir/file.txt", b"hello", tar::EntryType::Regular, 0o100666));
    v.extend(raw_entry(b"single", b"x", tar::EntryType::Regular, 0o600));
    v.extend([0u8; 1024]);
    let fs = new_fs();
    assert_eq!(run_in(&fs, &["test", "-d", "/tmp"], None).await.0, 0);
    let (code, _, err) = run_in(&fs, &["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/tmp"], Some(&v)).await;
    assert_eq!((code, err.as_str()), (0, ""));
    {
        let f = fs.lock().unwrap();
        assert!(f.is_dir("/tmp/foo") && f.is_dir("/tmp/dir"));
        let st = f.stat("/tmp/dir/file.txt").unwrap();
        assert_eq!((st.mode, st.size), (0o644, 5));
        assert_ne!(st.mtime, 1_700_000_000, "-m must not restore mtime");
    }
    // Trailing junk after the end-of-archive marker, and stdin left open, are fine.
    let (otx, mut orx) = mpsc::channel(8);
    let (itx, irx) = mpsc::channel(8);
    let (_rtx, rrx) = watch::channel(None);
    let io = ExecIo { stdin: Some(irx), stdout: otx.clone(), stderr: otx, resize: rrx, tty: false };
    let env = env_with(&fs);
    let task = tokio::spawn(async move { run(argv(&["tar", "xmf", "-"]), &env, io).await });
    itx.send(Bytes::from(v)).await.unwrap();
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), 0);
    assert!(orx.recv().await.is_none());
    assert_eq!(fs.lock().unwrap().read("/single"), Some(&b"x"[..]));
    // `kubectl cp f pod:rel` runs `tar -xmf - -C .` (path.Dir of a bare name), relative to the workdir.
    let one = [raw_entry(b"rel", b"r", tar::EntryType::Regular, 0o644), vec![0; 1024]].concat();
    assert_eq!(run_in(&fs, &["tar", "-xmf", "-", "-C", "."], Some(&one)).await.0, 0);
    assert_eq!(fs.lock().unwrap().read("/rel"), Some(&b"r"[..]));
    assert_eq!(run_in(&fs, &["tar", "-xmf", "-", "-C", "/nope"], Some(&one)).await.2, "tar: can't change directory to '/nope': No such file or directory\n");
}

#[tokio::test]
async fn tar_hostile_archives() {
    let fs = new_fs();
    for (name, want) in [(&b"../evil"[..], "tar: ../evil: refusing unsafe member name\n"), (b"/etc/evil", "tar: /etc/evil: refusing unsafe member name\n"), (b"a/../../evil", "tar: a/../../evil: refusing unsafe member name\n")] {
        let mut v = raw_entry(name, b"pwned", tar::EntryType::Regular, 0o644);
        v.extend(raw_entry(b"ok", b"fine", tar::EntryType::Regular, 0o644));
        let (code, _, err) = run_in(&fs, &["tar", "-xmf", "-", "-C", "/tmp"], Some(&v)).await;
        assert_eq!((code, err.as_str()), (1, want));
        assert_eq!(fs.lock().unwrap().read("/tmp/ok"), Some(&b"fine"[..]));
    }
    {
        let f = fs.lock().unwrap();
        assert!(!f.exists("/evil") && !f.exists("/etc/evil") && !f.exists("/tmp/evil"));
    }
    // Oversized: refused from the header alone, without waiting for the data.
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_size(100 << 20);
    h.set_cksum();
    let (itx, irx) = mpsc::channel(8);
    let (etx, mut erx) = mpsc::channel(8);
    let (_rtx, rrx) = watch::channel(None);
    let io = ExecIo { stdin: Some(irx), stdout: etx.clone(), stderr: etx, resize: rrx, tty: false };
    let env = env_with(&fs);
    let task = tokio::spawn(async move { run(argv(&["tar", "xf", "-"]), &env, io).await });
    itx.send(Bytes::copy_from_slice(h.as_bytes())).await.unwrap();
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), 1);
    assert_eq!(erx.recv().await.unwrap(), "tar: archive exceeds the 64 MiB extraction limit\n");
    // Garbage, truncation, symlinks.
    assert_eq!(run_in(&fs, &["tar", "xf", "-"], Some(&[b'z'; 2000])).await, (1, String::new(), "tar: invalid tar magic\n".into()));
    let mut v = raw_entry(b"trunc", &[1u8; 2000], tar::EntryType::Regular, 0o644);
    v.truncate(1024);
    assert_eq!(run_in(&fs, &["tar", "xf", "-"], Some(&v)).await.0, 1);
    let v = raw_entry(b"link", b"", tar::EntryType::Symlink, 0o777);
    assert_eq!(run_in(&fs, &["tar", "xf", "-"], Some(&v)).await, (0, String::new(), "tar: link: skipping unsupported entry type\n".into()));
    assert_eq!(run_in(&fs, &["tar", "xf", "-"], Some(b"")).await.0, 0);
}

#[test]
fn podfs_basics() {
    let mut fs = PodFs::default();
    assert!(fs.is_dir("/") && fs.is_dir("/tmp/") && fs.is_dir("/var/log") && !fs.is_dir("/nope"));
    fs.write("/a/b/c.txt", "x");
    assert!(fs.is_dir("/a/b") && fs.is_file("a/b/c.txt") && fs.exists("/a/./b/../b/c.txt"));
    assert_eq!(fs.stat("/a/b/c.txt").map(|e| (e.mode, e.size)), Some((0o644, 1)));
    assert_eq!(fs.list("/a").unwrap().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(fs.list("/a/b/c.txt"), None);
    assert_eq!(fs.put("/a/b/c.txt/d", vec![], None, None, false), Err(FsError::NotADirectory));
    assert_eq!(fs.put("/a", vec![], None, None, false), Err(FsError::IsADirectory));
    assert_eq!(fs.remove("/a", false), Err(FsError::NotEmpty));
    assert_eq!(fs.remove("/", true), Err(FsError::Busy));
    fs.append("/a/log", b"1").unwrap();
    fs.append("/a/log", b"2").unwrap();
    assert_eq!(fs.read("/a/log"), Some(&b"12"[..]));
    assert_eq!(fs.used_bytes(), 3);
    fs.remove("/a", true).unwrap();
    assert_eq!(fs.used_bytes(), 0);
    assert_eq!(fs.put("/huge", vec![0; (super::super::podfs::FS_CAPACITY + 1) as usize], None, None, false), Err(FsError::NoSpace));
    assert_eq!(resolve("/tmp", "../etc/./x/"), "/etc/x");
    assert_eq!(resolve("/", "../../.."), "/");
}

/// Deterministic pseudo-random generator for the fuzz loops.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[tokio::test]
async fn no_panic_on_random_input() {
    const PIECES: [&str; 49] = [
        "echo", "cat", "$X", "'", "\"", "|", "&&", "||", ";", ">", "/tmp/f", "\\", "$", "${", "}", "(", "true", "exit", "seq 3",
        " ", "\n", "#", "~", "2>&1", "<", "head -n", "1", "tar", "cf -", "x", "wc", "test -d", "[", "]", "!", "env", "sh -c", ">>",
        "$?", "tail -c+2", "while", "do", "done", "for i in", "if", "then", "fi", "break", "read x",
    ];
    let mut seed = 42;
    let fs = new_fs();
    for _ in 0..1000 {
        let script = (0..lcg(&mut seed) % 12).map(|_| PIECES[(lcg(&mut seed) % 49) as usize]).collect::<Vec<_>>().join(" ");
        let stdin: Vec<u8> = (0..lcg(&mut seed) % 64).map(|_| lcg(&mut seed) as u8).collect();
        run_raw(&fs, &["sh", "-c", &script], Some(&stdin)).await;
    }
    for cmd in [&["sh"][..], &["tar", "xf", "-"], &["cat"], &["head", "-c", "5"]] {
        for _ in 0..30 {
            let stdin: Vec<u8> = (0..lcg(&mut seed) % 3000).map(|_| lcg(&mut seed) as u8).collect();
            run_raw(&fs, cmd, Some(&stdin)).await;
        }
    }
    // Random keystrokes on a tty.
    for _ in 0..30 {
        let t = Tty::start(&["sh"]);
        let keys: Vec<u8> = (0..lcg(&mut seed) % 200).map(|_| lcg(&mut seed) as u8 % 0x80).collect();
        let _ = t.tx.as_ref().unwrap().send(Bytes::from(keys)).await;
        let mut t = t;
        t.tx.take();
        while t.out.recv().await.is_some() {}
        timeout(T, t.task).await.expect("tty session hung").expect("panicked");
    }
}
