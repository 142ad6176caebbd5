//! The CPython side: each scenario's program in `benches/python/`, run with
//! the `python3` on `PATH` (and on uvloop's loop when uvloop imports).
//!
//! A program is started once per round, so it takes its turn in the same
//! alternation as the Rust runtimes. It warms up at n / 10, times one run at
//! size `n` itself (interpreter start-up is not counted) and prints one JSON
//! line: `{"ns": .., "ops": ..}`, or `{"unavailable": "reason"}` when the
//! interpreter lacks a feature the scenario needs.

use std::path::PathBuf;
use std::process::Command;

/// The interpreter found on `PATH`.
#[derive(Debug, Clone)]
pub(crate) struct Interpreter {
    /// `3.11.7`.
    pub(crate) version: String,
    /// uvloop's version, if it imports.
    pub(crate) uvloop: Option<String>,
}

/// What one run of a CPython program gave.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It ran: nanoseconds for `ops` operations.
    Timed { ns: f64, ops: usize },
    /// The interpreter lacks what the scenario needs (the reason, in words).
    Unavailable(String),
}

/// Finds `python3` and whether uvloop imports; `Err` says why not.
pub(crate) fn detect() -> Result<Interpreter, String> {
    let probe = "import sys\n\
                 print('%d.%d.%d' % sys.version_info[:3])\n\
                 try:\n    import uvloop\n    print(uvloop.__version__)\n\
                 except ImportError:\n    print('')\n";
    let out = Command::new("python3")
        .args(["-c", probe])
        .output()
        .map_err(|e| format!("no python3 on PATH ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let version = lines.next().unwrap_or("").trim().to_owned();
    let uvloop = lines
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Ok(Interpreter { version, uvloop })
}

impl Interpreter {
    /// `3.11` of `3.11.7`.
    pub(crate) fn major_minor(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The directory of the CPython programs.
pub(crate) fn programs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `program` once at size `n`, on uvloop if `uvloop`.
pub(crate) fn run(program: &str, n: usize, uvloop: bool) -> Result<Outcome, String> {
    let path = programs_dir().join(program);
    let mut cmd = Command::new("python3");
    cmd.arg(&path).args(["--n", &n.to_string()]);
    if uvloop {
        cmd.arg("--uvloop");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start python3 {}: {e}", path.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("").trim();
    if !out.status.success() || last.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().last().unwrap_or("no output").trim();
        return Err(format!("{program} failed ({}): {why}", out.status));
    }
    if let Some(reason) = json_str(last, "unavailable") {
        return Ok(Outcome::Unavailable(reason));
    }
    match (json_num(last, "ns"), json_num(last, "ops")) {
        (Some(ns), Some(ops)) if ops >= 1.0 => Ok(Outcome::Timed {
            ns,
            ops: ops as usize,
        }),
        _ => Err(format!("{program} printed no timing: {last}")),
    }
}

/// Runs a server `program` (started with `--serve`), drives it with `load`
/// (warm-up at `ops(n / 10)` operations, then `ops(n)` timed here), and stops
/// it by closing its stdin. For scenarios whose load generator is Rust code
/// shared with the Rust runtimes.
pub(crate) fn serve(
    program: &str,
    n: usize,
    uvloop: bool,
    load: fn(u16, usize),
    ops: fn(usize) -> usize,
) -> Result<Outcome, String> {
    use std::io::BufRead as _;
    let path = programs_dir().join(program);
    let mut cmd = Command::new("python3");
    cmd.arg(&path).arg("--serve");
    if uvloop {
        cmd.arg("--uvloop");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start python3 {}: {e}", path.display()))?;
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    let read = std::io::BufReader::new(stdout).read_line(&mut first);
    let outcome = match (
        read,
        json_str(&first, "unavailable"),
        json_num(&first, "port"),
    ) {
        (Ok(_), Some(reason), _) => Ok(Outcome::Unavailable(reason)),
        (Ok(_), None, Some(port)) if (1.0..65536.0).contains(&port) => {
            let port = port as u16;
            load(port, ops((n / 10).max(1)));
            let t = std::time::Instant::now();
            load(port, ops(n));
            Ok(Outcome::Timed {
                ns: t.elapsed().as_nanos() as f64,
                ops: ops(n),
            })
        }
        _ => Err(format!("{program} printed no port: {:?}", first.trim())),
    };
    drop(child.stdin.take()); // the program's signal to stop
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if outcome.is_ok() && !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().last().unwrap_or("no output").trim();
        return Err(format!("{program} failed ({}): {why}", out.status));
    }
    outcome
}

/// The number after `"key":` in a one-line JSON object of our own programs.
fn json_num(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = line[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The string after `"key":` (our programs write no escapes but `\"`).
fn json_str(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = line[at..].trim_start().strip_prefix(':')?.trim_start();
    let body = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_programs_one_line_answers() {
        let line = r#"{"ns": 1234567, "ops": 1000}"#;
        assert_eq!(json_num(line, "ns"), Some(1_234_567.0));
        assert_eq!(json_num(line, "ops"), Some(1000.0));
        let line = r#"{"unavailable": "asyncio.eager_task_factory is new in Python 3.12"}"#;
        assert_eq!(
            json_str(line, "unavailable").as_deref(),
            Some("asyncio.eager_task_factory is new in Python 3.12")
        );
        assert_eq!(json_num(line, "ns"), None);
    }
}
