//! The small validator, `no-deletes`, run every way the table compares:
//! natively (`cairn_rules`), through cairn (the component, a fresh instance
//! per call), as an Extism plugin (one kept instance, or a new plugin per
//! call) and as a Rego policy in regorus. Each returns the same [`Answer`],
//! so the harness checks they agree before timing them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_host::{CallOutcome, Change, Checkpoint, Limits, Plugin, Runtime};
use serde::Deserialize;

/// The Rego version of the rule (`bench/policy/no_deletes.rego`).
pub const REGO_POLICY: &str = include_str!("../policy/no_deletes.rego");

/// The rule the Rego policy's answer is read from.
pub const REGO_VERDICT_RULE: &str = "data.cairn.no_deletes.verdict";

/// What every peer answers: the outcome, and (rule, document) per finding,
/// sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: String,
    pub findings: Vec<(String, String)>,
}

impl Answer {
    fn new(outcome: impl Into<String>, mut findings: Vec<(String, String)>) -> Answer {
        findings.sort();
        Answer {
            outcome: outcome.into(),
            findings,
        }
    }
}

/// The rule compiled into the harness: the physical limit.
pub fn native(change: &cairn_rules::Change, config: &str) -> anyhow::Result<Answer> {
    let report = cairn_rules::no_deletes::check(change, config).map_err(anyhow::Error::msg)?;
    let outcome = match report.outcome {
        cairn_rules::Outcome::Pass => "pass",
        cairn_rules::Outcome::Warn => "warn",
        cairn_rules::Outcome::Fail => "fail",
        cairn_rules::Outcome::Inconclusive => "inconclusive",
    };
    let findings = report
        .findings
        .into_iter()
        .map(|f| (f.rule, f.location.map(|l| l.document).unwrap_or_default()))
        .collect();
    Ok(Answer::new(outcome, findings))
}

/// A cairn plugin called one validation at a time, as `cairn check` calls it.
pub struct CairnPeer {
    plugin: Plugin,
    tokio: tokio::runtime::Runtime,
    at: Checkpoint,
    limits: Limits,
}

impl CairnPeer {
    pub fn load(runtime: &Runtime, component: &Path) -> anyhow::Result<CairnPeer> {
        let plugin = runtime
            .load_file(component, None)
            .with_context(|| format!("cannot load {}", component.display()))?;
        Ok(CairnPeer {
            plugin,
            tokio: current_thread_tokio()?,
            at: Checkpoint::default(),
            limits: Limits::default(),
        })
    }

    /// With limits other than the defaults (a longer deadline, say).
    pub fn with_limits(mut self, limits: Limits) -> CairnPeer {
        self.limits = limits;
        self
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// One call: a fresh store and instance, the change lowered into it,
    /// the verdict checked against the contract.
    pub fn validate(
        &self,
        change: &Arc<Change>,
        config: &str,
    ) -> cairn_host::CallReport<cairn_host::Verdict> {
        self.tokio.block_on(self.plugin.validate(
            Arc::clone(change),
            &self.at,
            config,
            &self.limits,
        ))
    }

    /// One call, read as an [`Answer`].
    pub fn answer(&self, change: &Arc<Change>, config: &str) -> anyhow::Result<Answer> {
        let report = self.validate(change, config);
        let CallOutcome::Completed(verdict) = report.outcome else {
            bail!(
                "{} did not complete: {:?}",
                self.plugin.name(),
                report.outcome
            );
        };
        let findings = verdict
            .findings
            .into_iter()
            .map(|f| (f.rule, f.location.map(|l| l.document).unwrap_or_default()))
            .collect();
        Ok(Answer::new(verdict.outcome.to_string(), findings))
    }
}

pub fn current_thread_tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")
}

/// The verdict JSON the Extism plugin writes.
#[derive(Deserialize)]
struct PeerVerdict {
    outcome: String,
    findings: Vec<PeerFinding>,
}

#[derive(Deserialize)]
struct PeerFinding {
    rule: String,
    document: Option<String>,
}

impl PeerVerdict {
    fn answer(self) -> Answer {
        let findings = self
            .findings
            .into_iter()
            .map(|f| (f.rule, f.document.unwrap_or_default()))
            .collect();
        Answer::new(self.outcome, findings)
    }
}

/// The same rule as an Extism plugin, with limits like cairn's defaults
/// (1 s timeout, 64 MiB of memory) and no WASI: Extism's defaults otherwise
/// (its on-demand instance allocator, its epoch timer thread).
pub struct ExtismPeer {
    compiled: extism::CompiledPlugin,
    kept: extism::Plugin,
}

impl ExtismPeer {
    pub fn new(wasm: &[u8]) -> anyhow::Result<ExtismPeer> {
        let manifest = extism::Manifest::new([extism::Wasm::data(wasm.to_vec())])
            .with_timeout(Duration::from_secs(1))
            // In 64 KiB pages: 64 MiB.
            .with_memory_max(1024);
        let compiled = extism::CompiledPlugin::new(
            extism::PluginBuilder::new(manifest)
                .with_wasi(false)
                .with_cache_disabled(),
        )
        .context("Extism cannot compile the plugin")?;
        let kept = extism::Plugin::new_from_compiled(&compiled)
            .context("Extism cannot instantiate the plugin")?;
        Ok(ExtismPeer { compiled, kept })
    }

    /// A call on the instance kept from call to call (Extism's usual way:
    /// state left by one call is visible to the next).
    pub fn call_kept(&mut self, input: &str) -> anyhow::Result<Answer> {
        let output: &[u8] = self.kept.call("validate", input)?;
        Ok(serde_json::from_slice::<PeerVerdict>(output)?.answer())
    }

    /// A new plugin from the compiled module for this call only: the
    /// isolation cairn gives every call.
    pub fn call_fresh(&self, input: &str) -> anyhow::Result<Answer> {
        let mut plugin = extism::Plugin::new_from_compiled(&self.compiled)?;
        let output: &[u8] = plugin.call("validate", input)?;
        Ok(serde_json::from_slice::<PeerVerdict>(output)?.answer())
    }
}

/// The same rule as a Rego policy, compiled once by regorus and evaluated
/// per input (`CompiledPolicy::eval_with_input`, regorus's fastest path).
pub struct RegoPeer {
    policy: regorus::CompiledPolicy,
}

impl RegoPeer {
    pub fn new() -> anyhow::Result<RegoPeer> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("no_deletes.rego".to_owned(), REGO_POLICY.to_owned())
            .context("regorus refuses the policy")?;
        let policy = engine
            .compile_with_entrypoint(&REGO_VERDICT_RULE.into())
            .context("regorus cannot compile the policy")?;
        Ok(RegoPeer { policy })
    }

    pub fn eval(&self, input: &str) -> anyhow::Result<Answer> {
        let input = regorus::Value::from_json_str(input)?;
        let verdict = self.policy.eval_with_input(input)?;
        let outcome = verdict["outcome"].as_string()?.to_string();
        let findings = verdict["findings"]
            .as_set()?
            .iter()
            .map(|f| {
                let text = |key: &str| f[key].as_string().map(|s| s.to_string());
                Ok((text("rule")?, text("document")?))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Answer::new(outcome, findings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Workload, peer_input};
    use cairn_host::Document;

    /// A change with one document of each kind the rule tells apart.
    fn mixed_change() -> Workload {
        Workload::new(Change::new(
            [
                Document::new("a/deleted.json", Some(b"{}".to_vec()), None),
                Document::new(
                    "a/emptied.json",
                    Some(b"{}".to_vec()),
                    Some(b" \n".to_vec()),
                ),
                Document::new("legacy/old.json", Some(b"{}".to_vec()), None),
                Document::new("a/added.json", None, Some(b"{}".to_vec())),
                Document::new(
                    "a/edited.json",
                    Some(b"{}".to_vec()),
                    Some(b"{\"x\": 1}".to_vec()),
                ),
            ],
            Vec::new(),
        ))
    }

    /// Every peer gives the same answer, so the table compares like with
    /// like; the answer is the rule's, not an empty one.
    #[test]
    fn all_peers_agree_on_every_kind_of_document() {
        let runtime = cairn_tests::runtime();
        let cairn = CairnPeer::load(&runtime, Path::new(cairn_tests::guests::NO_DELETES))
            .expect("cairn loads no-deletes");
        let wasm = std::fs::read(crate::facts::EXTISM_NO_DELETES).expect("the Extism guest");
        let mut extism = ExtismPeer::new(&wasm).expect("Extism loads the guest");
        let rego = RegoPeer::new().expect("regorus compiles the policy");

        for (config, expected) in [
            (
                "{}",
                Answer::new(
                    "fail",
                    vec![
                        ("no-deletes/deleted".into(), "a/deleted.json".into()),
                        ("no-deletes/deleted".into(), "legacy/old.json".into()),
                        ("no-deletes/emptied".into(), "a/emptied.json".into()),
                    ],
                ),
            ),
            (
                r#"{"allow": ["legacy/*", "*/deleted.json"]}"#,
                Answer::new(
                    "warn",
                    vec![("no-deletes/emptied".into(), "a/emptied.json".into())],
                ),
            ),
        ] {
            let change = mixed_change();
            let input = peer_input(&change.host, config);
            assert_eq!(native(&change.native, config).expect("native"), expected);
            assert_eq!(cairn.answer(&change.host, config).expect("cairn"), expected);
            assert_eq!(extism.call_kept(&input).expect("extism kept"), expected);
            assert_eq!(extism.call_fresh(&input).expect("extism fresh"), expected);
            assert_eq!(rego.eval(&input).expect("regorus"), expected);
        }
    }
}
