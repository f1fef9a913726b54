//! Who decides the fault for a request: [`FaultDecider`] (object-safe), the
//! plugin-backed [`PluginDecider`], and [`FnDecider`] for a closure.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::runtime::call::CallOutcome;
use crate::runtime::inject::{Decision, RequestInfo};
use crate::runtime::limits::Limits;
use crate::runtime::plugin::Plugin;

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    Decided(Decision),
    /// Refused, trapped, timed out, overloaded, invalid output...: the
    /// request is forwarded untouched and the failure counted.
    Failed {
        kind: String,
        message: String,
    },
}

/// What the decision log's header says about the decider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeciderInfo {
    pub name: String,
    /// `sha256:...` of the plugin, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The plugin's contract version (`0.2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The config (JSON text) the plugin is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Where the plugin was loaded from, so a replay can load it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
}

/// Decides what fault to apply to a request. Object-safe.
pub trait FaultDecider: Send + Sync + 'static {
    fn decide<'a>(
        &'a self,
        request: &'a RequestInfo,
    ) -> Pin<Box<dyn Future<Output = DecideOutcome> + Send + 'a>>;

    /// Who decides, for the decision log's header.
    fn info(&self) -> DeciderInfo {
        DeciderInfo {
            name: "custom".to_owned(),
            ..DeciderInfo::default()
        }
    }
}

/// A fault injector plugin with its config and limits.
#[derive(Debug, Clone)]
pub struct PluginDecider {
    plugin: Plugin,
    config: String,
    limits: Limits,
    path: Option<std::path::PathBuf>,
}

impl PluginDecider {
    /// `config` is JSON text (`{}` when none is given).
    pub fn new(plugin: Plugin, config: impl Into<String>, limits: Limits) -> PluginDecider {
        PluginDecider {
            plugin,
            config: config.into(),
            limits,
            path: None,
        }
    }

    /// Records where the plugin was loaded from (in the decision log's
    /// header, for `cairn experiment replay`).
    pub fn with_path(mut self, path: impl Into<std::path::PathBuf>) -> PluginDecider {
        self.path = Some(path.into());
        self
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }
}

impl FaultDecider for PluginDecider {
    fn decide<'a>(
        &'a self,
        request: &'a RequestInfo,
    ) -> Pin<Box<dyn Future<Output = DecideOutcome> + Send + 'a>> {
        Box::pin(async move {
            let report = self
                .plugin
                .decide(request, &self.config, &self.limits)
                .await;
            match report.outcome {
                CallOutcome::Completed(decision) => DecideOutcome::Decided(decision),
                CallOutcome::Refused(message) => DecideOutcome::Failed {
                    kind: "refused".to_owned(),
                    message,
                },
                CallOutcome::Stopped(failure) => DecideOutcome::Failed {
                    kind: failure.kind.as_str().to_owned(),
                    message: failure.message,
                },
            }
        })
    }

    fn info(&self) -> DeciderInfo {
        DeciderInfo {
            name: self.plugin.name().to_owned(),
            digest: Some(format!("sha256:{}", self.plugin.sha256())),
            contract: Some(self.plugin.contract_version().as_str().to_owned()),
            config: Some(self.config.clone()),
            path: self.path.clone(),
        }
    }
}

/// A decider from a synchronous closure (tests, fixed policies).
pub struct FnDecider<F> {
    name: String,
    decide: F,
}

impl<F> FnDecider<F>
where
    F: Fn(&RequestInfo) -> DecideOutcome + Send + Sync + 'static,
{
    pub fn new(name: impl Into<String>, decide: F) -> FnDecider<F> {
        FnDecider {
            name: name.into(),
            decide,
        }
    }
}

impl<F> FaultDecider for FnDecider<F>
where
    F: Fn(&RequestInfo) -> DecideOutcome + Send + Sync + 'static,
{
    fn decide<'a>(
        &'a self,
        request: &'a RequestInfo,
    ) -> Pin<Box<dyn Future<Output = DecideOutcome> + Send + 'a>> {
        let outcome = (self.decide)(request);
        Box::pin(std::future::ready(outcome))
    }

    fn info(&self) -> DeciderInfo {
        DeciderInfo {
            name: self.name.clone(),
            ..DeciderInfo::default()
        }
    }
}
