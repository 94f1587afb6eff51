//! A tiny shell for the fake provider: enough of `sh -c` to exercise Sandkit.
//!
//! Supported: `cmd; cmd`, `cmd && cmd`, `cmd || cmd`, quotes, `$VAR`, redirections
//! `> file`, `>> file`, `>&2`, `2> file`, and the builtins `echo [-n]`, `printf`, `cat`,
//! `ls`, `pwd`, `sleep`, `exit`, `true`, `false`, `printenv`, `policy`, `incr`, `rm`,
//! `touch`, `mkdir`, `test -f`/`[ -f … ]`, `fetch`/`curl` (evaluates the firewall rules).
//! Anything else exits 127.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandkit_core::{EnvMap, LogChunk, ProcessSink};
use sandkit_policies::FirewallRules;

/// The mutable state a process sees: the session filesystem and policy.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    pub(crate) files: BTreeMap<String, String>,
    pub(crate) rules: Option<FirewallRules>,
}

pub(crate) type SharedMachine = Arc<Mutex<Machine>>;

fn lock(m: &SharedMachine) -> std::sync::MutexGuard<'_, Machine> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    And,
    Or,
    Semi,
    Out { append: bool, fd: u8 },
    ToStderr,
}

fn tokenize(script: &str, env: &EnvMap) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = script.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    let flush = |word: &mut String, in_word: &mut bool, toks: &mut Vec<Tok>| {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => flush(&mut word, &mut in_word, &mut toks),
            ';' => {
                flush(&mut word, &mut in_word, &mut toks);
                toks.push(Tok::Semi);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                flush(&mut word, &mut in_word, &mut toks);
                toks.push(Tok::And);
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                flush(&mut word, &mut in_word, &mut toks);
                toks.push(Tok::Or);
            }
            '2' if !in_word && chars.peek() == Some(&'>') => {
                chars.next();
                toks.push(Tok::Out {
                    append: false,
                    fd: 2,
                });
            }
            '>' => {
                flush(&mut word, &mut in_word, &mut toks);
                if chars.peek() == Some(&'&') {
                    chars.next();
                    if chars.peek() == Some(&'2') {
                        chars.next();
                    }
                    toks.push(Tok::ToStderr);
                } else if chars.peek() == Some(&'>') {
                    chars.next();
                    toks.push(Tok::Out {
                        append: true,
                        fd: 1,
                    });
                } else {
                    toks.push(Tok::Out {
                        append: false,
                        fd: 1,
                    });
                }
            }
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        '$' => word.push_str(&expand(&mut chars, env)),
                        _ => word.push(q),
                    }
                }
            }
            '$' => {
                in_word = true;
                word.push_str(&expand(&mut chars, env));
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut toks);
    toks
}

fn expand(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, env: &EnvMap) -> String {
    let mut name = String::new();
    while let Some(c) = chars.peek() {
        if c.is_ascii_alphanumeric() || *c == '_' {
            name.push(*c);
            chars.next();
        } else {
            break;
        }
    }
    if name.is_empty() {
        return "$".to_owned();
    }
    env.get(&name).cloned().unwrap_or_default()
}

#[derive(Debug, Default)]
struct Simple {
    words: Vec<String>,
    stdout_to: Option<(String, bool)>,
    stderr_to: Option<String>,
    stdout_to_stderr: bool,
}

enum Sep {
    Always,
    IfOk,
    IfFailed,
}

fn parse(toks: Vec<Tok>) -> Vec<(Sep, Simple)> {
    let mut out = Vec::new();
    let mut cur = Simple::default();
    let mut sep = Sep::Always;
    let mut iter = toks.into_iter();
    while let Some(t) = iter.next() {
        match t {
            Tok::Word(w) => cur.words.push(w),
            Tok::Out { append, fd } => {
                if let Some(Tok::Word(target)) = iter.next() {
                    if fd == 2 {
                        cur.stderr_to = Some(target);
                    } else {
                        cur.stdout_to = Some((target, append));
                    }
                }
            }
            Tok::ToStderr => cur.stdout_to_stderr = true,
            Tok::Semi | Tok::And | Tok::Or => {
                out.push((sep, std::mem::take(&mut cur)));
                sep = match t {
                    Tok::And => Sep::IfOk,
                    Tok::Or => Sep::IfFailed,
                    _ => Sep::Always,
                };
            }
        }
    }
    if !cur.words.is_empty() {
        out.push((sep, cur));
    }
    out
}

/// Runs a command (`sh -c SCRIPT` or a single program), streaming output to `sink`;
/// returns the exit code.
pub(crate) async fn run(
    machine: SharedMachine,
    cwd: String,
    command: String,
    args: Vec<String>,
    env: EnvMap,
    sink: &ProcessSink,
) -> i32 {
    let toks = match (command.as_str(), args.first().map(String::as_str)) {
        ("sh" | "bash", Some("-c" | "-lc")) => {
            tokenize(args.get(1).map(String::as_str).unwrap_or(""), &env)
        }
        _ => std::iter::once(command)
            .chain(args)
            .map(Tok::Word)
            .collect(),
    };
    let mut code = 0;
    for (sep, simple) in parse(toks) {
        let run_it = match sep {
            Sep::Always => true,
            Sep::IfOk => code == 0,
            Sep::IfFailed => code != 0,
        };
        if !run_it || simple.words.is_empty() {
            continue;
        }
        let (result, exit) = builtin(&machine, &cwd, &env, &simple.words).await;
        code = result.code;
        emit(&machine, &cwd, &simple, result, sink).await;
        if exit {
            break;
        }
    }
    code
}

struct Output {
    stdout: String,
    stderr: String,
    code: i32,
}

fn ok(stdout: impl Into<String>) -> Output {
    Output {
        stdout: stdout.into(),
        stderr: String::new(),
        code: 0,
    }
}

fn fail(stderr: impl Into<String>, code: i32) -> Output {
    Output {
        stdout: String::new(),
        stderr: stderr.into(),
        code,
    }
}

async fn emit(
    machine: &SharedMachine,
    cwd: &str,
    simple: &Simple,
    out: Output,
    sink: &ProcessSink,
) {
    let Output { stdout, stderr, .. } = out;
    if let Some((target, append)) = &simple.stdout_to {
        let path = resolve(cwd, target);
        let mut m = lock(machine);
        let entry = m.files.entry(path).or_default();
        if *append {
            entry.push_str(&stdout);
        } else {
            *entry = stdout;
        }
    } else if simple.stdout_to_stderr {
        if !stdout.is_empty() {
            sink.send(LogChunk::stderr(stdout)).await;
        }
    } else if !stdout.is_empty() {
        sink.send(LogChunk::stdout(stdout)).await;
    }
    if let Some(target) = &simple.stderr_to {
        lock(machine).files.insert(resolve(cwd, target), stderr);
    } else if !stderr.is_empty() {
        sink.send(LogChunk::stderr(stderr)).await;
    }
}

/// Normalises a path relative to `cwd` (`/workspace` is the session root).
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

fn describe(rules: Option<&FirewallRules>) -> String {
    match rules {
        None | Some(FirewallRules::AllowAll) => "allow-all".to_owned(),
        Some(FirewallRules::DenyAll) => "deny-all".to_owned(),
        Some(FirewallRules::Allow(domains)) => {
            let mut ids: Vec<&str> = domains
                .iter()
                .flat_map(|d| d.service_ids.iter().map(String::as_str))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            format!("allow-services:{}", ids.join(","))
        }
    }
}

/// Runs one builtin; the flag is `true` when the script must stop (`exit`).
async fn builtin(
    machine: &SharedMachine,
    cwd: &str,
    env: &EnvMap,
    words: &[String],
) -> (Output, bool) {
    let name = words[0].as_str();
    let args = &words[1..];
    let out = match name {
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
        "printf" => {
            let format = args.first().cloned().unwrap_or_default();
            let mut values = args.iter().skip(1);
            let mut s = String::new();
            let mut chars = format.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('\\', Some('n')) => {
                        chars.next();
                        s.push('\n');
                    }
                    ('%', Some('s')) => {
                        chars.next();
                        s.push_str(values.next().map(String::as_str).unwrap_or(""));
                    }
                    _ => s.push(c),
                }
            }
            ok(s)
        }
        "cat" => {
            let m = lock(machine);
            let mut s = String::new();
            let mut missing = None;
            for f in args {
                match m.files.get(&resolve(cwd, f)) {
                    Some(content) => s.push_str(content),
                    None => missing = Some(f.clone()),
                }
            }
            match missing {
                Some(f) => Output {
                    stdout: s,
                    stderr: format!("cat: {f}: No such file or directory\n"),
                    code: 1,
                },
                None => ok(s),
            }
        }
        "ls" => {
            let m = lock(machine);
            let prefix = format!("{}/", cwd.trim_end_matches('/'));
            let mut names: Vec<String> = m
                .files
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
                .collect();
            names.dedup();
            let mut s = names.join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            ok(s)
        }
        "pwd" => ok(format!("{cwd}\n")),
        "sleep" => {
            let secs: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
            ok("")
        }
        "exit" => {
            let code = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
            return (fail("", code), true);
        }
        "true" | "mkdir" => ok(""),
        "false" => fail("", 1),
        "printenv" => match args.first().and_then(|k| env.get(k)) {
            Some(v) => ok(format!("{v}\n")),
            None => fail("", 1),
        },
        "policy" => ok(format!("{}\n", describe(lock(machine).rules.as_ref()))),
        "incr" => {
            let Some(f) = args.first() else {
                return (fail("incr: missing file operand\n", 2), false);
            };
            let mut m = lock(machine);
            let path = resolve(cwd, f);
            let n: i64 = m
                .files
                .get(&path)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
                + 1;
            m.files.insert(path, format!("{n}\n"));
            ok(format!("{n}\n"))
        }
        "rm" => {
            let mut m = lock(machine);
            for f in args.iter().filter(|a| !a.starts_with('-')) {
                m.files.remove(&resolve(cwd, f));
            }
            ok("")
        }
        "touch" => {
            let mut m = lock(machine);
            for f in args {
                m.files.entry(resolve(cwd, f)).or_default();
            }
            ok("")
        }
        "test" | "[" => {
            let exists = args.len() >= 2
                && args[0] == "-f"
                && lock(machine).files.contains_key(&resolve(cwd, &args[1]));
            if exists { ok("") } else { fail("", 1) }
        }
        "fetch" | "curl" => {
            let Some(url) = args.iter().find(|a| !a.starts_with('-')) else {
                return (fail("fetch: missing URL\n", 2), false);
            };
            let rules = lock(machine)
                .rules
                .clone()
                .unwrap_or(FirewallRules::AllowAll);
            let eval = rules.evaluate(url);
            if eval.allowed {
                ok(format!(
                    "allowed {}\n",
                    eval.domain.unwrap_or_else(|| "*".to_owned())
                ))
            } else {
                fail(format!("blocked by policy: {}\n", eval.reason), 7)
            }
        }
        other => fail(format!("fake: command not found: {other}\n"), 127),
    };
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_quotes_operators_and_variables() {
        let mut env = EnvMap::new();
        env.insert("NAME".into(), "world".into());
        let toks = tokenize(
            "echo 'a b' \"hi $NAME\" >> f.txt && cat f.txt; echo x >&2",
            &env,
        );
        assert_eq!(toks[0], Tok::Word("echo".into()));
        assert_eq!(toks[1], Tok::Word("a b".into()));
        assert_eq!(toks[2], Tok::Word("hi world".into()));
        assert_eq!(
            toks[3],
            Tok::Out {
                append: true,
                fd: 1
            }
        );
        assert!(toks.contains(&Tok::And));
        assert!(toks.contains(&Tok::ToStderr));
    }

    #[test]
    fn resolves_paths_inside_the_root() {
        assert_eq!(resolve("/workspace", "a/../b.txt"), "/workspace/b.txt");
        assert_eq!(resolve("/workspace", "./x"), "/workspace/x");
        assert_eq!(resolve("/workspace", "/tmp/y"), "/tmp/y");
    }
}
