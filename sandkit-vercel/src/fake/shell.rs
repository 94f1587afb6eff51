//! The fake sandbox's command runner: a tiny shell over an in-memory filesystem, run in
//! virtual time.
//!
//! Supported: `sh -c` / `sh -lc` / `bash -c` scripts with `;`, newlines, `&&`, `||`,
//! single and double quotes, `$VAR` / `${VAR}`, redirections `>`, `>>`, `2>`, `2>>`,
//! `>&2`, `1>&2`, `2>&1`, and the builtins `echo [-n]`, `printf` (`\NNN` bytes that
//! are not UTF-8 become U+FFFD, as the service sends them), `cat`, `ls`, `pwd`,
//! `cd`, `printenv`, `env`, `sleep`, `exit N`, `true`, `false`, `mkdir`, `touch`, `rm`,
//! `test`/`[` (`-f`, `-d`, `-e`). A program run without `sh -c` is one builtin call. Pipes,
//! background `&` and command substitution exit 2; unknown programs exit 127.
//!
//! Time is virtual: a process runs its steps up to "now" whenever it is observed, and
//! `sleep` moves its own clock forward. A wait-mode command runs to its end at once and
//! the HTTP answer is delayed until its virtual end; a detached one advances as requests
//! observe it. A timeout ends the process with 137 at its deadline; a kill with
//! `128 + signal`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::script::{Sep, Step, Target, parse_script};

/// Longest `sleep` honoured (longer ones, such as `sleep infinity`, sleep this long).
const MAX_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// One session's filesystem: files by absolute path, and directories made explicitly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fs {
    pub(crate) files: BTreeMap<String, String>,
    pub(crate) dirs: BTreeSet<String>,
}

impl Fs {
    /// Total bytes of file content.
    pub(crate) fn size(&self) -> u64 {
        self.files.values().map(|c| c.len() as u64).sum()
    }

    fn is_dir(&self, path: &str) -> bool {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        path == "/"
            || self.dirs.contains(path)
            || self.dirs.iter().any(|d| d.starts_with(&prefix))
            || self.files.keys().any(|f| f.starts_with(&prefix))
    }

    fn children(&self, dir: &str) -> BTreeSet<String> {
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        self.files
            .keys()
            .chain(self.dirs.iter())
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Normalises `path` against `cwd` into an absolute path without `.`/`..`.
pub(crate) fn resolve(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// What one builtin did.
enum Outcome {
    Done { out: String, err: String, code: i32 },
    Sleep(Duration),
    Exit(i32),
}

fn ok(out: impl Into<String>) -> Outcome {
    Outcome::Done {
        out: out.into(),
        err: String::new(),
        code: 0,
    }
}

fn fail(err: impl Into<String>, code: i32) -> Outcome {
    Outcome::Done {
        out: String::new(),
        err: err.into(),
        code,
    }
}

/// One command's process: its script, virtual clock, output and exit.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    steps: Vec<Step>,
    next: usize,
    last_code: i32,
    cwd: String,
    env: BTreeMap<String, String>,
    started: Instant,
    clock: Instant,
    deadline: Option<Instant>,
    /// `(is_stderr, data)` in the order produced.
    pub(crate) output: Vec<(bool, String)>,
    exit: Option<(i32, Instant)>,
}

impl Process {
    /// A process for `command args` started at `now`.
    pub(crate) fn new(
        command: &str,
        args: &[String],
        cwd: String,
        env: BTreeMap<String, String>,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Self {
        let shell = matches!(command, "sh" | "bash" | "/bin/sh" | "/bin/bash")
            && matches!(args.first().map(String::as_str), Some("-c" | "-lc"));
        let parsed = if shell {
            parse_script(args.get(1).map(String::as_str).unwrap_or(""), &env)
        } else {
            Ok(vec![Step {
                sep: Sep::Always,
                words: std::iter::once(command.to_owned())
                    .chain(args.iter().cloned())
                    .collect(),
                stdout: Target::Stdout,
                stderr: Target::Stderr,
            }])
        };
        let mut process = Process {
            steps: Vec::new(),
            next: 0,
            last_code: 0,
            cwd,
            env,
            started: now,
            clock: now,
            deadline: timeout.map(|t| now + t),
            output: Vec::new(),
            exit: None,
        };
        match parsed {
            Ok(steps) => process.steps = steps,
            Err(what) => {
                process.output.push((
                    true,
                    format!("sh: the fake Vercel sandbox does not support {what}\n"),
                ));
                process.exit = Some((2, now));
            }
        }
        process
    }

    /// Exit code once ended.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        self.exit.map(|(code, _)| code)
    }

    /// When it ended (virtual time).
    pub(crate) fn finished_at(&self) -> Option<Instant> {
        self.exit.map(|(_, at)| at)
    }

    /// Milliseconds from start to end, once ended.
    pub(crate) fn duration_ms(&self) -> Option<u64> {
        self.finished_at()
            .map(|at| at.saturating_duration_since(self.started).as_millis() as u64)
    }

    /// Ends a running process as if killed by `signal` at `now`.
    pub(crate) fn kill(&mut self, now: Instant, signal: i32, fs: &mut Fs) {
        self.advance(Some(now), fs);
        if self.exit.is_none() {
            self.exit = Some((128 + signal, now));
        }
    }

    /// Runs every step due by `until` (all of them when `None`).
    pub(crate) fn advance(&mut self, until: Option<Instant>, fs: &mut Fs) {
        while self.exit.is_none() {
            let killed_at = self.deadline.filter(|d| *d <= self.clock);
            let next_event = killed_at.unwrap_or(self.clock);
            if until.is_some_and(|u| next_event > u) {
                return;
            }
            if let Some(at) = killed_at {
                self.exit = Some((137, at));
                return;
            }
            let Some(step) = self.steps.get(self.next).cloned() else {
                self.exit = Some((self.last_code, self.clock));
                return;
            };
            self.next += 1;
            let run = match step.sep {
                Sep::Always => true,
                Sep::IfOk => self.last_code == 0,
                Sep::IfFailed => self.last_code != 0,
            };
            if !run {
                continue;
            }
            match self.builtin(&step.words, fs) {
                Outcome::Sleep(d) => {
                    self.last_code = 0;
                    self.clock += d;
                }
                Outcome::Exit(code) => self.exit = Some((code, self.clock)),
                Outcome::Done { out, err, code } => {
                    self.last_code = code;
                    self.emit(&step.stdout, out, fs);
                    self.emit(&step.stderr, err, fs);
                }
            }
        }
    }

    fn emit(&mut self, target: &Target, text: String, fs: &mut Fs) {
        match target {
            Target::File { path, append } => {
                let path = resolve(&self.cwd, path);
                let entry = fs.files.entry(path).or_default();
                if *append {
                    entry.push_str(&text);
                } else {
                    *entry = text;
                }
            }
            _ if text.is_empty() => {}
            Target::Stdout => self.output.push((false, text)),
            Target::Stderr => self.output.push((true, text)),
        }
    }

    fn builtin(&mut self, words: &[String], fs: &mut Fs) -> Outcome {
        let name = words[0].as_str();
        let args = &words[1..];
        match name {
            "echo" => {
                let (newline, rest) = match args.first().map(String::as_str) {
                    Some("-n") => (false, &args[1..]),
                    _ => (true, args),
                };
                let mut s = rest.join(" ");
                if newline {
                    s.push('\n');
                }
                ok(s)
            }
            "printf" => ok(printf(args)),
            "cat" => {
                let mut out = String::new();
                let mut err = String::new();
                for f in args {
                    match fs.files.get(&resolve(&self.cwd, f)) {
                        Some(content) => out.push_str(content),
                        None => err.push_str(&format!("cat: {f}: No such file or directory\n")),
                    }
                }
                let code = i32::from(!err.is_empty());
                Outcome::Done { out, err, code }
            }
            "ls" => {
                let dir = resolve(&self.cwd, args.first().map(String::as_str).unwrap_or("."));
                if fs.files.contains_key(&dir) {
                    return ok(format!("{}\n", args.first().cloned().unwrap_or_default()));
                }
                if !fs.is_dir(&dir) && dir != self.cwd {
                    return fail(
                        format!("ls: cannot access '{dir}': No such file or directory\n"),
                        2,
                    );
                }
                let names: Vec<String> = fs.children(&dir).into_iter().collect();
                ok(names.iter().map(|n| format!("{n}\n")).collect::<String>())
            }
            "pwd" => ok(format!("{}\n", self.cwd)),
            "cd" => {
                let target = resolve(&self.cwd, args.first().map(String::as_str).unwrap_or("/"));
                if fs.is_dir(&target) {
                    self.cwd = target;
                    ok("")
                } else {
                    fail(format!("sh: cd: can't cd to {target}\n"), 2)
                }
            }
            "printenv" => match args.first() {
                Some(k) => match self.env.get(k) {
                    Some(v) => ok(format!("{v}\n")),
                    None => fail("", 1),
                },
                None => ok(self.env_listing()),
            },
            "env" => ok(self.env_listing()),
            "sleep" => {
                let secs = args
                    .first()
                    .and_then(|a| a.trim_end_matches('s').parse::<f64>().ok());
                match secs {
                    Some(s) if s.is_finite() && s >= 0.0 => {
                        Outcome::Sleep(Duration::from_secs_f64(s.min(MAX_SLEEP.as_secs_f64())))
                    }
                    _ if args.first().is_some_and(|a| a == "infinity") => Outcome::Sleep(MAX_SLEEP),
                    _ => fail("sleep: invalid time interval\n", 1),
                }
            }
            "exit" => Outcome::Exit(
                args.first()
                    .and_then(|a| a.parse::<i32>().ok())
                    .map_or(self.last_code, |c| c & 0xff),
            ),
            "true" => ok(""),
            "false" => fail("", 1),
            "mkdir" => {
                for d in args.iter().filter(|a| !a.starts_with('-')) {
                    fs.dirs.insert(resolve(&self.cwd, d));
                }
                ok("")
            }
            "touch" => {
                for f in args {
                    fs.files.entry(resolve(&self.cwd, f)).or_default();
                }
                ok("")
            }
            "rm" => {
                for target in args.iter().filter(|a| !a.starts_with('-')) {
                    let path = resolve(&self.cwd, target);
                    let prefix = format!("{path}/");
                    fs.files
                        .retain(|f, _| f != &path && !f.starts_with(&prefix));
                    fs.dirs.retain(|d| d != &path && !d.starts_with(&prefix));
                }
                ok("")
            }
            "test" | "[" => {
                let args: Vec<&str> = args
                    .iter()
                    .map(String::as_str)
                    .filter(|a| *a != "]")
                    .collect();
                let holds = match args.as_slice() {
                    ["-f", p] => fs.files.contains_key(&resolve(&self.cwd, p)),
                    ["-d", p] => fs.is_dir(&resolve(&self.cwd, p)),
                    ["-e", p] => {
                        let p = resolve(&self.cwd, p);
                        fs.files.contains_key(&p) || fs.is_dir(&p)
                    }
                    ["-n", s] => !s.is_empty(),
                    ["-z", s] => s.is_empty(),
                    [a, "=", b] => a == b,
                    [a, "!=", b] => a != b,
                    _ => false,
                };
                if holds { ok("") } else { fail("", 1) }
            }
            other => fail(format!("sh: 1: {other}: not found\n"), 127),
        }
    }

    fn env_listing(&self) -> String {
        self.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

/// `printf FORMAT ARGS…` with `\n`, `\t`, `\NNN` (octal byte), `%s`, `%d`, `%%`. The
/// output is sent as JSON text, so bytes that are not UTF-8 become U+FFFD here, as the
/// service replaces them.
fn printf(args: &[String]) -> String {
    let format = args.first().cloned().unwrap_or_default();
    let mut values = args.iter().skip(1);
    let mut s: Vec<u8> = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('\\', Some('n')) => {
                chars.next();
                s.push(b'\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                s.push(b'\t');
            }
            ('\\', Some('r')) => {
                chars.next();
                s.push(b'\r');
            }
            ('\\', Some('\\')) => {
                chars.next();
                s.push(b'\\');
            }
            ('\\', Some('0'..='7')) => {
                let mut byte: u32 = 0;
                for _ in 0..3 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            byte = byte * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                s.push(u8::try_from(byte & 0xff).unwrap_or(0));
            }
            ('%', Some('s' | 'd')) => {
                chars.next();
                s.extend_from_slice(values.next().map(String::as_str).unwrap_or("").as_bytes());
            }
            ('%', Some('%')) => {
                chars.next();
                s.push(b'%');
            }
            _ => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, fs: &mut Fs) -> Process {
        let mut env = BTreeMap::new();
        env.insert("NAME".to_owned(), "world".to_owned());
        let mut p = Process::new(
            "sh",
            &["-c".to_owned(), script.to_owned()],
            "/vercel/sandbox".to_owned(),
            env,
            Instant::now(),
            None,
        );
        p.advance(None, fs);
        p
    }

    fn stdout(p: &Process) -> String {
        p.output
            .iter()
            .filter(|(e, _)| !e)
            .map(|(_, s)| s.as_str())
            .collect()
    }

    #[test]
    fn scripts_redirect_and_chain() {
        let mut fs = Fs::default();
        let p = run(
            "echo 'a b' > f.txt && echo \"hi $NAME\" >> f.txt; cat f.txt; echo x >&2; false || exit 4",
            &mut fs,
        );
        assert_eq!(stdout(&p), "a b\nhi world\n");
        assert_eq!(p.output.last(), Some(&(true, "x\n".to_owned())));
        assert_eq!(p.exit_code(), Some(4));
        assert_eq!(fs.files["/vercel/sandbox/f.txt"], "a b\nhi world\n");
    }

    #[test]
    fn sleeping_process_advances_in_virtual_time() {
        let mut fs = Fs::default();
        let t0 = Instant::now();
        let mut p = Process::new(
            "sh",
            &["-c".into(), "echo tick; sleep 60; echo late > l.txt".into()],
            "/w".into(),
            BTreeMap::new(),
            t0,
            None,
        );
        p.advance(Some(t0 + Duration::from_secs(1)), &mut fs);
        assert_eq!(stdout(&p), "tick\n");
        assert_eq!(p.exit_code(), None);
        assert!(fs.files.is_empty());
        p.kill(t0 + Duration::from_secs(2), 15, &mut fs);
        assert_eq!(p.exit_code(), Some(143));
        assert!(fs.files.is_empty());
    }

    #[test]
    fn timeout_kills_at_the_deadline() {
        let mut fs = Fs::default();
        let t0 = Instant::now();
        let mut p = Process::new(
            "sh",
            &["-c".into(), "sleep 30; echo late".into()],
            "/w".into(),
            BTreeMap::new(),
            t0,
            Some(Duration::from_millis(500)),
        );
        p.advance(None, &mut fs);
        assert_eq!(p.exit_code(), Some(137));
        assert_eq!(p.duration_ms(), Some(500));
        assert!(stdout(&p).is_empty());
    }

    #[test]
    fn unsupported_syntax_and_unknown_programs() {
        let mut fs = Fs::default();
        assert_eq!(run("echo a | cat", &mut fs).exit_code(), Some(2));
        assert_eq!(run("nope", &mut fs).exit_code(), Some(127));
        assert_eq!(run("printenv MISSING", &mut fs).exit_code(), Some(1));
    }

    #[test]
    fn ls_lists_children_and_paths_normalise() {
        let mut fs = Fs::default();
        run("mkdir d; echo 1 > d/x; echo 2 > y; touch z", &mut fs);
        let p = run("ls; ls d", &mut fs);
        assert_eq!(stdout(&p), "d\ny\nz\nx\n");
        assert_eq!(resolve("/a/b", "../c/./d"), "/a/c/d");
    }
}
