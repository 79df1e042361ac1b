//! `palisade check <file>...`: checks Palisade filter configurations with the filters' own parsers.

use palisade_cli::filter::Filter;
use palisade_cli::report::{self, Severity};
use palisade_cli::{check_file, FileResult};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: palisade check [--filter <name>] [--deny-warnings] <file>...

Checks Palisade filter configurations with the filters' own parsers. A file is
  - one filter's configuration (JSON or YAML); the filter comes from --filter, the file name
    (e.g. rate-limit.json) or the fields it uses;
  - an Envoy config: every Wasm filter whose module (palisade_<filter>.wasm) or root_id
    (palisade_<filter>) is a Palisade filter has its `configuration` checked;
  - Istio WasmPlugin manifests: each plugin whose pluginName is palisade_<filter>.

Filters: security-headers, rate-limit, token-auth, input-validation.
Exit status: 0 all valid (warnings allowed); 1 an invalid configuration or file (or a warning,
with --deny-warnings); 2 a usage error or a file that cannot be read.";

struct Args {
    filter: Option<Filter>,
    deny_warnings: bool,
    files: Vec<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    match args.next().as_deref() {
        Some("check") => {}
        Some("-h" | "--help" | "help") => return Ok(None),
        Some("-V" | "--version") => {
            println!("palisade {}", env!("CARGO_PKG_VERSION"));
            return Ok(None);
        }
        Some(other) => return Err(format!("unknown command `{other}`")),
        None => return Err("no command".to_owned()),
    }
    let mut parsed = Args {
        filter: None,
        deny_warnings: false,
        files: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--filter" | "-f" => {
                let name = args.next().ok_or("--filter needs a filter name")?;
                parsed.filter = Some(
                    Filter::from_name(&name).ok_or_else(|| format!("unknown filter `{name}`"))?,
                );
            }
            "--deny-warnings" => parsed.deny_warnings = true,
            "-h" | "--help" => return Ok(None),
            other if other.starts_with('-') && other != "-" => {
                return Err(format!("unknown option `{other}`"))
            }
            _ => parsed.files.push(PathBuf::from(arg)),
        }
    }
    if parsed.files.is_empty() {
        return Err("no file to check".to_owned());
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("palisade: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (mut errors, mut warnings, mut unreadable) = (0usize, 0usize, false);
    for path in &args.files {
        let file = path.display().to_string();
        match check_file(path, args.filter) {
            FileResult::Unreadable(e) => {
                eprintln!("error: {file}: {e}");
                unreadable = true;
            }
            FileResult::Invalid(e) => {
                eprintln!("error: {file}: {e}");
                errors += 1;
            }
            FileResult::UnknownFilter => {
                eprintln!(
                    "error: {file}: cannot tell which filter this configuration is for; pass --filter <security-headers|rate-limit|token-auth|input-validation>"
                );
                errors += 1;
            }
            FileResult::NoFilters { kind, skipped } => {
                eprintln!(
                    "error: {file}: no Palisade filter found in this {kind} ({skipped} other Wasm plugin(s) skipped)"
                );
                errors += 1;
            }
            FileResult::Checked { configs, .. } => {
                for checked in &configs {
                    for finding in &checked.findings {
                        eprintln!("{}", report::line(&file, checked, finding));
                        match finding.severity {
                            Severity::Error => errors += 1,
                            Severity::Warning => warnings += 1,
                        }
                    }
                    if !checked.has_errors() {
                        println!("ok: {file}: {}", checked.subject());
                    }
                }
            }
        }
    }
    println!(
        "{} file(s), {errors} error(s), {warnings} warning(s)",
        args.files.len()
    );
    if unreadable {
        ExitCode::from(2)
    } else if errors > 0 || (args.deny_warnings && warnings > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
