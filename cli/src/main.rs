//! `palisade check <file>...`: checks Palisade filter configurations with the filters' own parsers.
//! `palisade schema <filter>`: prints the JSON Schema of a filter's configuration.

use palisade_cli::filter::Filter;
use palisade_cli::report::{self, Severity};
use palisade_cli::{check_file, FileResult};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: palisade check [--filter <name>] [--deny-warnings] <file>...
       palisade schema <filter>

Checks Palisade filter configurations with the filters' own parsers. A file is
  - one filter's configuration (JSON or YAML); the filter comes from --filter, the file name
    (e.g. rate-limit.json) or the fields it uses;
  - an Envoy config: every Wasm filter whose module (palisade_<filter>.wasm) or root_id
    (palisade_<filter>) is a Palisade filter has its `configuration` checked;
  - Istio WasmPlugin manifests: each plugin whose pluginName is palisade_<filter>.

`palisade schema <filter>` prints the JSON Schema (draft 2020-12) of the filter's configuration,
generated from the types its parser reads, for editors and CI: e.g.
  palisade schema token-auth > token-auth.schema.json

Filters: security-headers, rate-limit, token-auth, input-validation.
Exit status: 0 all valid (warnings allowed); 1 an invalid configuration or file (or a warning,
with --deny-warnings); 2 a usage error (such as an unknown filter) or a file that cannot be read.";

/// What the command line asks for.
enum Command {
    Check(Args),
    Schema(Filter),
    /// Help or the version: printed, nothing else to do.
    Done,
}

struct Args {
    filter: Option<Filter>,
    deny_warnings: bool,
    files: Vec<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Command>, String> {
    match args.next().as_deref() {
        Some("check") => parse_check(args).map(|a| a.map(Command::Check)),
        Some("schema") => parse_schema(args).map(|f| f.map(Command::Schema)),
        Some("-h" | "--help" | "help") => Ok(None),
        Some("-V" | "--version") => {
            println!("palisade {}", env!("CARGO_PKG_VERSION"));
            Ok(Some(Command::Done))
        }
        Some(other) => Err(format!("unknown command `{other}`")),
        None => Err("no command".to_owned()),
    }
}

/// `palisade schema <filter>`: exactly one filter name.
fn parse_schema(mut args: impl Iterator<Item = String>) -> Result<Option<Filter>, String> {
    let names = Filter::ALL.map(Filter::name).join(", ");
    let name = match args.next() {
        Some(arg) if arg == "-h" || arg == "--help" => return Ok(None),
        Some(name) => name,
        None => return Err(format!("schema needs a filter name: one of {names}")),
    };
    let filter = Filter::from_name(&name)
        .ok_or_else(|| format!("unknown filter `{name}`: use one of {names}"))?;
    match args.next() {
        None => Ok(Some(filter)),
        Some(extra) => Err(format!(
            "schema takes one filter name, got `{extra}` as well"
        )),
    }
}

fn parse_check(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
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
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(Some(command)) => command,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("palisade: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Check(args) => check(&args),
        Command::Schema(filter) => schema(filter),
        Command::Done => ExitCode::SUCCESS,
    }
}

/// Prints the filter's configuration schema, pretty JSON.
fn schema(filter: Filter) -> ExitCode {
    let printed = palisade_cli::schema_text(filter)
        .map_err(std::io::Error::from)
        .and_then(|json| writeln!(std::io::stdout().lock(), "{json}"));
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade: cannot print the schema: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &Args) -> ExitCode {
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
