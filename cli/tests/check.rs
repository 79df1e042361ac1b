#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `palisade check` as a user runs it: the shipped configs pass, broken ones fail with the field
//! named, risky ones warn.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn palisade(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run palisade");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn fixture(name: &str) -> String {
    format!("cli/tests/fixtures/{name}")
}

/// Every `.yaml` in `dir` (relative to the repository), sorted.
fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join(dir))
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_envoy_config_and_istio_manifest_passes() {
    let mut files = yaml_files("envoy-config");
    // The only YAML there that is neither: it starts Envoy with palisade.yaml.
    files.retain(|f| f != "envoy-config/docker-compose.yaml");
    let istio = yaml_files("envoy-config/istio");
    assert!(istio.len() >= 4, "{istio:?}");
    files.extend(istio);
    for file in &files {
        // Warnings are legal settings (shown, not failed); errors are not.
        let run = palisade(&["check", file]);
        assert_eq!(run.code, 0, "{file}:\n{}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains(&format!("ok: {file}: ")),
            "{file}: {}",
            run.stdout
        );
        assert!(!run.stderr.contains("error: "), "{file}: {}", run.stderr);
    }
}

#[test]
fn the_chained_config_and_the_manifests_name_each_filter() {
    let run = palisade(&["check", "envoy-config/palisade.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for filter in [
        "security-headers",
        "rate-limit",
        "token-auth",
        "input-validation",
    ] {
        assert!(
            run.stdout.contains(&format!(
                "ok: envoy-config/palisade.yaml: {filter} (http filter palisade.{})",
                filter.replace('-', "_")
            )),
            "{}",
            run.stdout
        );
    }
    for filter in [
        "security-headers",
        "rate-limit",
        "token-auth",
        "input-validation",
    ] {
        let file = format!("envoy-config/istio/{filter}.yaml");
        let run = palisade(&["check", &file]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout.contains(&format!(
                "ok: {file}: {filter} (WasmPlugin istio-system/palisade-{filter})"
            )),
            "{}",
            run.stdout
        );
    }
}

/// (fixture, the error line it must print)
const BROKEN: &[(&str, &str)] = &[
    (
        "combined-broken.json",
        "combined: rate_limit.limits[0].per: unknown variant `fortnight`",
    ),
    (
        "security-headers-unknown-field.json",
        "security-headers: hsts.max_agee: unknown field `max_agee`, expected one of `max_age`",
    ),
    (
        "rate-limit-bad-period.yaml",
        "rate-limit: limits[0].per: unknown variant `fortnight`",
    ),
    (
        "input-validation-unsupported-keyword.json",
        "input-validation: rules[0].body.schema.properties.a.$ref: unknown field `$ref`",
    ),
    (
        "token-auth-no-keys.json",
        "token-auth: providers[0]: a provider needs keys",
    ),
    (
        "envoy-broken.yaml",
        "rate-limit (http filter palisade.rate_limit): store.on_eror: unknown field `on_eror`",
    ),
    (
        "envoy-broken.yaml",
        "input-validation (http filter validation): path.max_length: invalid type: string \"long\"",
    ),
    (
        "istio-broken.yaml",
        "token-auth (WasmPlugin istio-system/palisade-token-auth): requires.mode: unknown variant `sometimes`",
    ),
    ("not-json.json", "not valid JSON: EOF while parsing"),
    (
        "no-hints.json",
        "cannot tell which filter this configuration is for; pass --filter",
    ),
    (
        "envoy-no-palisade.yaml",
        "no Palisade filter found in this Envoy config",
    ),
];

#[test]
fn broken_fixtures_fail_with_the_file_filter_and_field_named() {
    for (name, expected) in BROKEN {
        let file = fixture(name);
        let run = palisade(&["check", &file]);
        assert_eq!(run.code, 1, "{file}: {}{}", run.stdout, run.stderr);
        let line = format!("error: {file}: {expected}");
        assert!(
            run.stderr.lines().any(|l| l.starts_with(&line)),
            "{file}: expected a line starting with\n  {line}\ngot:\n{}",
            run.stderr
        );
    }
}

#[test]
fn every_fixture_is_exercised() {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("cli/tests/fixtures"))
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        assert!(
            BROKEN.iter().any(|(n, _)| n == name) || RISKY.iter().any(|(n, _)| n == name),
            "fixture {name} is not used by any test"
        );
    }
}

#[test]
fn one_broken_filter_does_not_hide_the_others() {
    let run = palisade(&["check", &fixture("envoy-broken.yaml")]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "ok: cli/tests/fixtures/envoy-broken.yaml: security-headers (http filter palisade.security_headers)"
        ),
        "{}",
        run.stdout
    );
    // The Wasm filter that is not Palisade's is neither checked nor reported.
    assert!(!run.stdout.contains("someone.else"), "{}", run.stdout);
    assert!(!run.stderr.contains("someone.else"), "{}", run.stderr);
    assert!(
        run.stdout.contains("1 file(s), 2 error(s), 0 warning(s)"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_filter_can_be_named_explicitly() {
    // The same document is valid for one filter and refused by another's parser.
    let file = fixture("no-hints.json");
    let run = palisade(&["check", "--filter", "security-headers", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run
        .stdout
        .contains(&format!("ok: {file}: security-headers")));
    let run = palisade(&["check", "--filter", "token-auth", &file]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "error: {file}: token-auth: (root): missing field `providers`"
        )),
        "{}",
        run.stderr
    );
}

/// (fixture, warnings it must print, in order)
const RISKY: &[(&str, &[&str])] = &[
    (
        "combined-risky.json",
        &[
            "combined: rate_limit.store.on_error: `allow`",
            "combined: input_validation.mode: `report`",
        ],
    ),
    (
        "envoy-risky.yaml",
        &[
            "security-headers (http filter palisade.security_headers): preset: `none` and nothing else configured",
            "rate-limit (http filter palisade.rate_limit): store.on_error: `allow`: when the shared-data store fails",
            "token-auth (http filter palisade.token_auth): failure_policy: `FAIL_OPEN`: when the filter cannot run",
            "token-auth (http filter palisade.token_auth): providers[0].jwks.keys[0]: an HMAC secret written inline",
            "token-auth (http filter palisade.token_auth): providers[1].hmac_secret_env: `SERVICES_SECRET` is not passed to the VM",
            "token-auth (http filter palisade.token_auth): providers[2].hmac_secret_env: `CI_SECRET` has its value written inline",
            "input-validation (http filter palisade.input_validation): mode: `report`",
        ],
    ),
    (
        // A plain config: nothing is known about the VM environment, so no warning about it.
        "token-auth-open.json",
        &["token-auth: requires.mode: `none` and no rule requires a token"],
    ),
    (
        "istio-risky.yaml",
        &[
            "token-auth (WasmPlugin istio-system/palisade-token-auth): spec.failStrategy: `FAIL_OPEN`",
            "token-auth (WasmPlugin istio-system/palisade-token-auth): providers[0].hmac_secret_env: `SERVICES_SECRET` has its value written inline in spec.vmConfig.env",
        ],
    ),
];

#[test]
fn risky_settings_warn_and_fail_only_with_deny_warnings() {
    for (name, expected) in RISKY {
        let file = fixture(name);
        let run = palisade(&["check", &file]);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .collect();
        assert_eq!(warnings.len(), expected.len(), "{file}:\n{}", run.stderr);
        for (line, want) in warnings.iter().zip(expected.iter()) {
            let want = format!("warning: {file}: {want}");
            assert!(line.starts_with(&want), "got\n  {line}\nwanted\n  {want}");
        }
        // No secret value is ever printed.
        assert!(!run.stderr.contains("not-a-real-secret"), "{}", run.stderr);
        assert!(!run.stderr.contains("c2VjcmV0"), "{}", run.stderr);

        let run = palisade(&["check", "--deny-warnings", &file]);
        assert_eq!(run.code, 1, "{file}: --deny-warnings");
    }
}

#[test]
fn usage_errors_and_unreadable_files_exit_2() {
    let run = palisade(&["check"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("palisade: no file to check"),
        "{}",
        run.stderr
    );
    let run = palisade(&["check", "--filter", "jwt", "x.json"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown filter `jwt`"),
        "{}",
        run.stderr
    );
    let run = palisade(&["check", "cli/tests/fixtures/does-not-exist.json"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: cli/tests/fixtures/does-not-exist.json: cannot read:"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_combined_module_fails_on_deny_warnings_and_names_itself() {
    let strict = palisade(&["check", "--deny-warnings", &fixture("combined-risky.json")]);
    assert_ne!(strict.code, 0);
    let run = palisade(&["check", "envoy-config/combined.yaml"]);
    assert!(
        run.stdout
            .contains("ok: envoy-config/combined.yaml: combined (http filter palisade.combined)"),
        "{}",
        run.stdout
    );
}
