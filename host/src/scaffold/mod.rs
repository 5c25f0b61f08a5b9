//! `turnstile init`: a new plugin crate that builds, tests and runs before
//! its author changes a line. Pure: [`Scaffold::files`] renders the
//! templates, [`Scaffold::write`] puts them in a new directory.

use std::path::{Path, PathBuf};

use crate::naming::is_name_part;
use crate::topology::Topology;

const CARGO_TOML: &str = include_str!("Cargo.toml.in");
const LIB_RS: &str = include_str!("lib.rs.in");
const README: &str = include_str!("README.md.in");
const CONFIG: &str = include_str!("turnstile.toml.in");
const GITIGNORE: &str = "/target\n/plugins\nCargo.lock\n";

/// Why a crate cannot be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{what} {value:?} is not a name (lowercase words joined by single dashes, like `booking-audit`)")]
    BadName { what: &'static str, value: String },
    #[error("a plugin needs at least one action in --{0}")]
    NoActions(&'static str),
    #[error("{0} already exists; choose a new directory")]
    Exists(PathBuf),
    #[error("the SDK is not at {0}: pass --sdk with the path of plugins/sdk in a Turnstile checkout")]
    NoSdk(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// The crate (and directory) name, e.g. `audit`.
    pub name: String,
    pub consumes: Vec<String>,
    pub emits: Vec<String>,
    /// The SDK crate the new one depends on by path.
    pub sdk: PathBuf,
}

impl Scaffold {
    /// Checks the names.
    pub fn new(name: &str, consumes: Vec<String>, emits: Vec<String>, sdk: PathBuf) -> Result<Self, ScaffoldError> {
        if !is_name_part(name) {
            return Err(ScaffoldError::BadName { what: "plugin name", value: name.into() });
        }
        for (what, list) in [("consumes", &consumes), ("emits", &emits)] {
            if list.is_empty() {
                return Err(ScaffoldError::NoActions(what));
            }
            if let Some(bad) = list.iter().find(|a| !is_name_part(a)) {
                return Err(ScaffoldError::BadName { what: "action", value: bad.clone() });
            }
        }
        Ok(Scaffold { name: name.into(), consumes, emits, sdk })
    }

    /// The service the plugin implements: the name, ending in `-service`.
    pub fn service(&self) -> String {
        if self.name.ends_with("-service") { self.name.clone() } else { format!("{}-service", self.name) }
    }

    /// The `[[topology.topics]]` the plugin needs beyond the built-in ones:
    /// one per emitted action (to the client), and one per consumed action
    /// that no topic carries yet (from the client).
    pub fn topics_toml(&self) -> String {
        let builtin = Topology::builtin();
        let service = self.service();
        let topic = |action: &str, from: &str, to: &str| {
            format!(
                "[[topology.topics]]\naction = \"{action}\"\nfrom = \"{from}\"\nto = \"{to}\"\nrouting = \"booking\"\n"
            )
        };
        let mut out = Vec::new();
        for action in self.consumes.iter().filter(|a| builtin.flow(a).is_none()) {
            out.push(topic(action, crate::naming::CLIENT, &service));
        }
        for action in self.emits.iter().filter(|a| builtin.flow(a).is_none()) {
            out.push(topic(action, &service, crate::naming::CLIENT));
        }
        out.join("\n")
    }

    /// Every file of the crate, relative to its directory.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let quoted = |list: &[String]| list.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
        let prose = |list: &[String]| list.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
        let type_name: String = self
            .name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect();
        let type_name =
            if type_name.starts_with(|c: char| c.is_ascii_digit()) { format!("P{type_name}") } else { type_name };
        let sdk = self.sdk.display().to_string();
        let render = |template: &str| {
            template
                .replace("{crate}", &self.name)
                .replace("{lib_name}", &self.name.replace('-', "_"))
                .replace("{service}", &self.service())
                .replace("{type_name}", &type_name)
                .replace("{consumes}", &quoted(&self.consumes))
                .replace("{emits}", &quoted(&self.emits))
                .replace("{consumes_list}", &prose(&self.consumes))
                .replace("{emits_list}", &prose(&self.emits))
                .replace("{first_consume}", &self.consumes[0])
                .replace("{first_emit_type}", &self.emits[0].replace('-', "_"))
                .replace("{first_emit}", &self.emits[0])
                .replace("{sdk}", &sdk.replace('\\', "/"))
                .replace("{topics}", &self.topics_toml())
        };
        vec![
            ("Cargo.toml", render(CARGO_TOML)),
            ("src/lib.rs", render(LIB_RS)),
            ("README.md", render(README)),
            ("turnstile.toml", render(CONFIG)),
            (".gitignore", GITIGNORE.to_owned()),
        ]
    }

    /// Writes the crate into `dir`, which must not exist yet.
    pub fn write(&self, dir: &Path) -> Result<(), ScaffoldError> {
        if !self.sdk.join("Cargo.toml").is_file() {
            return Err(ScaffoldError::NoSdk(self.sdk.clone()));
        }
        if dir.exists() {
            return Err(ScaffoldError::Exists(dir.to_owned()));
        }
        for (name, text) in self.files() {
            let path = dir.join(name);
            let io = |source| ScaffoldError::Io { path: path.clone(), source };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&path, text).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit() -> Scaffold {
        Scaffold::new("audit", vec!["booking-status-changed".into()], vec!["booking-audit".into()], "/sdk".into())
            .unwrap()
    }

    #[test]
    fn renders_every_placeholder() {
        let placeholders =
            ["crate", "lib_name", "service", "type_name", "consumes", "emits", "first_emit", "sdk", "topics"];
        for (name, text) in audit().files() {
            for p in placeholders {
                assert!(!text.contains(&format!("{{{p}")), "{name} kept {{{p}}}:\n{text}");
            }
        }
        let files = audit().files();
        let lib = &files[1].1;
        assert!(lib.contains("pub struct Audit;") && lib.contains("const SERVICE: &'static str = \"audit-service\";"));
        assert!(files[0].1.contains("turnstile-plugin = { path = \"/sdk\" }"));
    }

    #[test]
    fn the_config_declares_the_topics_the_plugin_needs() {
        let config: crate::config::Config = toml::from_str(&audit().files()[3].1).expect("valid config");
        let topology = config.topology.build().expect("valid topology");
        let flow = topology.flow("booking-audit").expect("an output topic");
        assert_eq!((flow.from.as_str(), flow.to.as_str()), ("audit-service", "client"));
        let own = Scaffold::new("x", vec!["my-input".into()], vec!["my-output".into()], "/sdk".into()).unwrap();
        assert!(own.topics_toml().contains("action = \"my-input\"\nfrom = \"client\"\nto = \"x-service\""));
    }

    #[test]
    fn refuses_bad_names() {
        assert!(Scaffold::new("Audit", vec!["a".into()], vec!["b".into()], "/sdk".into()).is_err());
        assert!(Scaffold::new("audit", vec![], vec!["b".into()], "/sdk".into()).is_err());
        assert!(Scaffold::new("audit", vec!["a".into()], vec!["B c".into()], "/sdk".into()).is_err());
    }
}
