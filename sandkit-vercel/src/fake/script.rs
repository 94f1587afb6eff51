//! Scripts for the fake shell: tokenizing (quotes, `$VAR`, operators, redirections)
//! and parsing into steps.

use std::collections::BTreeMap;

/// Parses a `sh -c` script into steps, expanding variables from `env`. The error names
/// the unsupported syntax.
pub(crate) fn parse_script(
    script: &str,
    env: &BTreeMap<String, String>,
) -> Result<Vec<Step>, &'static str> {
    parse(tokenize(script, env))
}

/// A token of a script.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    And,
    Or,
    Out { fd: u8, append: bool },
    Dup { from: u8, to: u8 },
    Unsupported(&'static str),
}

/// Splits a script into tokens, expanding variables from `env`.
fn tokenize(script: &str, env: &BTreeMap<String, String>) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    fn flush(word: &mut String, in_word: &mut bool, toks: &mut Vec<Tok>) {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => flush(&mut word, &mut in_word, &mut toks),
            '\n' | ';' => {
                flush(&mut word, &mut in_word, &mut toks);
                toks.push(Tok::Semi);
            }
            '#' if !in_word => {
                // Comment to the end of the line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        toks.push(Tok::Semi);
                        break;
                    }
                }
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
            '|' => toks.push(Tok::Unsupported("pipes")),
            '&' => toks.push(Tok::Unsupported("background jobs")),
            '`' => toks.push(Tok::Unsupported("command substitution")),
            '1' | '2' if !in_word && chars.peek() == Some(&'>') => {
                chars.next();
                let fd = if c == '1' { 1 } else { 2 };
                redirect(fd, &mut chars, &mut toks);
            }
            '>' => {
                flush(&mut word, &mut in_word, &mut toks);
                redirect(1, &mut chars, &mut toks);
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
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => word.push(n),
                            Some(n) => {
                                word.push('\\');
                                word.push(n);
                            }
                            None => {}
                        },
                        '$' => match expand(&mut chars, env) {
                            Ok(v) => word.push_str(&v),
                            Err(what) => toks.push(Tok::Unsupported(what)),
                        },
                        _ => word.push(q),
                    }
                }
            }
            '$' => {
                in_word = true;
                match expand(&mut chars, env) {
                    Ok(v) => word.push_str(&v),
                    Err(what) => toks.push(Tok::Unsupported(what)),
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(n) => word.push(n),
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

fn redirect(fd: u8, chars: &mut std::iter::Peekable<std::str::Chars<'_>>, toks: &mut Vec<Tok>) {
    if chars.peek() == Some(&'&') {
        chars.next();
        let to = match chars.next() {
            Some('1') => 1,
            _ => 2,
        };
        toks.push(Tok::Dup { from: fd, to });
    } else if chars.peek() == Some(&'>') {
        chars.next();
        toks.push(Tok::Out { fd, append: true });
    } else {
        toks.push(Tok::Out { fd, append: false });
    }
}

fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    env: &BTreeMap<String, String>,
) -> Result<String, &'static str> {
    let braced = chars.peek() == Some(&'{');
    if braced {
        chars.next();
    } else if chars.peek() == Some(&'(') {
        return Err("command substitution");
    }
    let mut name = String::new();
    while let Some(c) = chars.peek() {
        if c.is_ascii_alphanumeric() || *c == '_' {
            name.push(*c);
            chars.next();
        } else {
            break;
        }
    }
    if braced && chars.next() != Some('}') {
        return Err("parameter expansion");
    }
    if name.is_empty() {
        return Ok("$".to_owned());
    }
    Ok(env.get(&name).cloned().unwrap_or_default())
}

/// Where a stream of one step goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Stdout,
    Stderr,
    File { path: String, append: bool },
}

/// When a step runs, given the previous exit code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sep {
    Always,
    IfOk,
    IfFailed,
}

/// One simple command with its separator and redirections.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) sep: Sep,
    pub(crate) words: Vec<String>,
    pub(crate) stdout: Target,
    pub(crate) stderr: Target,
}

/// Groups tokens into steps; unsupported syntax names itself in the error.
fn parse(toks: Vec<Tok>) -> Result<Vec<Step>, &'static str> {
    let mut steps = Vec::new();
    let mut cur = Step {
        sep: Sep::Always,
        words: Vec::new(),
        stdout: Target::Stdout,
        stderr: Target::Stderr,
    };
    let mut iter = toks.into_iter();
    while let Some(tok) = iter.next() {
        match tok {
            Tok::Word(w) => cur.words.push(w),
            Tok::Unsupported(what) => return Err(what),
            Tok::Out { fd, append } => {
                let Some(Tok::Word(path)) = iter.next() else {
                    return Err("a redirection without a file");
                };
                let target = Target::File { path, append };
                if fd == 2 {
                    cur.stderr = target;
                } else {
                    cur.stdout = target;
                }
            }
            Tok::Dup { from, to } => {
                let target = if to == 2 {
                    cur.stderr.clone()
                } else {
                    cur.stdout.clone()
                };
                if from == 2 {
                    cur.stderr = target;
                } else {
                    cur.stdout = target;
                }
            }
            Tok::Semi | Tok::And | Tok::Or => {
                let sep = match tok {
                    Tok::And => Sep::IfOk,
                    Tok::Or => Sep::IfFailed,
                    _ => Sep::Always,
                };
                let done = std::mem::replace(
                    &mut cur,
                    Step {
                        sep,
                        words: Vec::new(),
                        stdout: Target::Stdout,
                        stderr: Target::Stderr,
                    },
                );
                if !done.words.is_empty() {
                    steps.push(done);
                } else if sep != Sep::Always {
                    return Err("an operator without a command before it");
                }
            }
        }
    }
    if !cur.words.is_empty() {
        steps.push(cur);
    }
    Ok(steps)
}
