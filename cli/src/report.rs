//! What `palisade check` tells the user.

use crate::filter::Filter;
use std::fmt::Write as _;

/// How bad a finding is: errors fail the check, warnings are risky but legal settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, about the field at `path` (relative to the filter's configuration, or to the
/// Envoy / Istio object that loads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn error(path: Option<&str>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            path: path.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn warning(path: Option<&str>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            path: path.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// The result of checking one filter configuration.
#[derive(Debug, Clone)]
pub struct Checked {
    pub filter: Option<Filter>,
    pub location: Option<String>,
    pub findings: Vec<Finding>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// `security-headers (http filter palisade.security_headers)`.
    pub fn subject(&self) -> String {
        let mut s = self
            .filter
            .map_or_else(|| "?".to_owned(), |f| f.name().to_owned());
        if let Some(location) = &self.location {
            let _ = write!(s, " ({location})");
        }
        s
    }
}

/// `error: cli/tests/fixtures/x.yaml: security-headers (http filter …): hsts.max_agee: unknown field …`
pub fn line(file: &str, checked: &Checked, finding: &Finding) -> String {
    let label = match finding.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut s = format!("{label}: {file}: {}: ", checked.subject());
    if let Some(path) = &finding.path {
        let _ = write!(s, "{path}: ");
    }
    s.push_str(&finding.message);
    s
}
