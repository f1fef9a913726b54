//! cairn's integration test suite: one binary, one module per area.

// Shared helpers: loading guests, sample changes, calling validators.
mod util;

// Hostile plugins are stopped or denied with the exact failure kind, in time,
// and the host keeps serving.
mod hostile;
// Engine settings other than the default: on-demand allocation, no epoch checks.
mod engines;
// Loading: digest pins, non-components, wrong worlds, truncated files.
mod loading;
// The on-disk compile cache: hits, misses, keys; corrupted or swapped
// artifacts are recompiled, never run; a directory others can write is refused.
mod cache;
// Hostile input files: FIFOs, devices and oversized files are refused up front.
mod inputs;
// SIGINT and SIGTERM: documented exit codes, no report left, plugin builds killed.
mod signals;
// Rollouts end to end on the example platform: complete, roll back and verify,
// unverified, frozen, two-role approvals, bad input, and kill-and-resume.
mod rollouts;
// Pre-initialisation: `initialize` runs once at first compile, calls start
// from its snapshot, a hostile `initialize` is stopped.
mod preinit;
// What a plugin sees (config, change, checkpoint, metrics) round-trips exactly.
mod roundtrip;
// Validators of one checkpoint run concurrently; the example plugins work.
mod checkpoint;
// Admission control: calls wait for pool capacity; past the wait they are
// `overloaded`, a host condition, never a plugin failure.
mod admission;
// The `cairn` command line: reports and exit codes.
mod cli;
// Findings located only by a JSON pointer get their line and column in every report.
mod escaping;
mod locations;
// `cairn check` with plans: gates, every report format, lock, the example plan.
mod plans;
// `cairn plugin test`: pinned texts, --bless, broken cases, output by case,
// the conformance corpus in three languages.
mod golden_cases;
// The bundled validators: every golden case of every plugin, and the default limits on 1 MB.
mod api_contract_corpus;
mod validators;
// The bundled fault injectors: every golden case through the host, deterministic
// and independent draws; a hostile injector is stopped with the exact failure kind.
mod injectors;
// Python and JavaScript plugins: cross-language conformance, limits, fault injection.
mod languages;
// Python and JavaScript builds are reproducible (input-addressed), and their
// uncaught errors are readable: type, message, the plugin's own file and line.
mod guest_languages;
// The fault proxy: experiments with real injectors and the workload client
// against a real upstream (plain and TLS): fault rates, replay, the envelope,
// the kill switch, guardrails, hostile injectors, start-up errors.
mod experiments;
// Experiments from the command line: the example's resilience checkpoint,
// production approval, start-up errors and their exit codes, guardrail
// breaches failing the gate, `cairn proxy` and `cairn experiment replay`.
mod experiment_plans;
// The rollout journal under SIGKILL: no acknowledged record lost or duplicated,
// a torn tail repaired and recorded, the journal verifies.
mod journal;
// Rollout hooks: commands and webhooks, retries with one idempotency key,
// timeouts that kill the process group, Retry-After, capped escaped output.
mod hooks;
// The PostgreSQL rollout store on a real server: file-identical lines, tampering
// named, leases (no append without one, takeover only after expiry), no forked
// chain under concurrent appends, claimable rollouts, concurrent migrate.
mod pg_store;
// `cairn serve` over real HTTP: endpoints against openapi.json, auth and tenant
// isolation, malformed and oversized bodies, overload (503 + Retry-After), hot
// reload with a bad and a good plan, draining shutdown, rollouts with approvals.
mod serve;
// Three `cairn serve` replicas on one PostgreSQL, SIGKILLed at seeded random
// moments: every rollout finishes on a survivor, no finished hook re-runs,
// every journal verifies.
mod serve_replicas;
// Plugin configs checked against the plugin's schema by the host: plan errors
// at file:line:column (65), `--config` errors (64), numbers every language reads
// alike.
mod configs;
// The `references` validator: golden cases, a 1 MB workflow, the example plan.
mod references;
// The SDKs as packages: crate, wheel and tarball made and used outside the
// checkout by a new user's scaffolds, built, tested and run.
mod sdk_packages;
