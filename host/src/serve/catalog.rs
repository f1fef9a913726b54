//! What the server serves, loaded whole: every tenant's plans with their
//! plugins compiled and checked, and the token table. A reload builds a new
//! catalog completely before it replaces the old one, so a bad plan never
//! serves.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::check::plan::Plan;
use crate::check::{self, CheckError, LoadedPlugins, NoProgress};
use crate::rollout::plan::RolloutPlan;
use crate::runtime::Runtime;
use crate::serve::config::{ServeConfig, TokenConfig};

/// Why a catalog could not be built (the old one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("tenant `{tenant}`, plan `{plan}`")]
    Plan {
        tenant: String,
        plan: String,
        #[source]
        source: Box<CheckError>,
    },
    #[error(
        "tenant `{tenant}`, plan `{plan}`: it sets a fuel limit, but this server started \
         without fuel metering (restart it to serve this plan)"
    )]
    NeedsFuel { tenant: String, plan: String },
}

/// A plan ready to run: parsed, its rollout keys read, its plugins loaded.
pub struct ServedPlan {
    pub name: String,
    pub plan: Plan,
    pub rollout_plan: RolloutPlan,
    pub plugins: LoadedPlugins,
    /// SHA-256 of the plan file as loaded.
    pub sha256: String,
}

/// One tenant's plans.
pub struct Tenant {
    pub name: String,
    pub plans: BTreeMap<String, Arc<ServedPlan>>,
}

/// Who a token is.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub tenant: String,
    pub identity: String,
    /// Roles it may approve (empty: any).
    pub roles: Vec<String>,
}

/// Everything one configuration serves.
pub struct Catalog {
    pub config: ServeConfig,
    pub tenants: BTreeMap<String, Tenant>,
    tokens: HashMap<[u8; 32], Caller>,
    /// Counts reloads that took effect (1 for the first load).
    pub generation: u64,
}

impl Catalog {
    /// Loads every plan of `config` and its plugins (compiling those not
    /// compiled yet; blocking). Fails on the first plan that does not load.
    pub fn build(
        config: ServeConfig,
        runtime: &Runtime,
        generation: u64,
    ) -> Result<Catalog, CatalogError> {
        let mut tenants = BTreeMap::new();
        let mut tokens = HashMap::new();
        for tenant in &config.tenants {
            let mut plans = BTreeMap::new();
            for (name, path) in &tenant.plans {
                let served = load_plan(runtime, name, path).map_err(|source| match source {
                    LoadFailure::Check(source) => CatalogError::Plan {
                        tenant: tenant.name.clone(),
                        plan: name.clone(),
                        source: Box::new(source),
                    },
                    LoadFailure::NeedsFuel => CatalogError::NeedsFuel {
                        tenant: tenant.name.clone(),
                        plan: name.clone(),
                    },
                })?;
                plans.insert(name.clone(), Arc::new(served));
            }
            for TokenConfig {
                identity,
                sha256,
                roles,
            } in &tenant.tokens
            {
                tokens.insert(
                    *sha256,
                    Caller {
                        tenant: tenant.name.clone(),
                        identity: identity.clone(),
                        roles: roles.clone(),
                    },
                );
            }
            tenants.insert(
                tenant.name.clone(),
                Tenant {
                    name: tenant.name.clone(),
                    plans,
                },
            );
        }
        Ok(Catalog {
            config,
            tenants,
            tokens,
            generation,
        })
    }

    /// The caller a bearer token belongs to. Tokens are compared by their
    /// SHA-256 (a table lookup on a hash leaks nothing usable about a
    /// token).
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.tokens.get(&crate::serve::config::token_sha256(token))
    }

    /// A plan of `tenant`, if it has one by that name.
    pub fn plan(&self, tenant: &str, name: &str) -> Option<&Arc<ServedPlan>> {
        self.tenants.get(tenant)?.plans.get(name)
    }

    /// Every plan, with its tenant.
    pub fn plans(&self) -> impl Iterator<Item = (&str, &Arc<ServedPlan>)> {
        self.tenants
            .values()
            .flat_map(|t| t.plans.values().map(move |p| (t.name.as_str(), p)))
    }

    /// Whether any plan sets a fuel limit (the runtime must meter fuel).
    pub fn needs_fuel(config: &ServeConfig) -> bool {
        config
            .tenants
            .iter()
            .flat_map(|t| t.plans.values())
            .any(|path| Plan::load(path).is_ok_and(|plan| plan.needs_fuel()))
    }
}

enum LoadFailure {
    Check(CheckError),
    NeedsFuel,
}

fn load_plan(runtime: &Runtime, name: &str, path: &PathBuf) -> Result<ServedPlan, LoadFailure> {
    let plan = Plan::load(path).map_err(|e| LoadFailure::Check(e.into()))?;
    if plan.needs_fuel() && !runtime.config().fuel_metering {
        return Err(LoadFailure::NeedsFuel);
    }
    let rollout_plan = RolloutPlan::load(&plan).map_err(|e| LoadFailure::Check(e.into()))?;
    let names: Vec<String> = plan.plugins.keys().cloned().collect();
    let plugins = check::load_plugins(
        runtime,
        &plan,
        names.iter().map(String::as_str),
        &NoProgress,
    )
    .map_err(LoadFailure::Check)?;
    // Runs on a blocking thread of the server's runtime.
    tokio::runtime::Handle::current()
        .block_on(check::config::check_configs(&plan, &plugins))
        .map_err(LoadFailure::Check)?;
    let bytes = std::fs::read(path).unwrap_or_default();
    Ok(ServedPlan {
        name: name.to_owned(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        plan,
        rollout_plan,
        plugins,
    })
}
