//! `cairn rollout start|resume|approve|abort|status` and `cairn journal
//! verify|show`: arguments, printing each recorded step, and exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use crate::check::plan::Plan;
use crate::check::{self, CheckError, LoadProgress};
use crate::cli::exit::{self, CliError};
use crate::escape::single_line;
use crate::rollout::engine::{self, RolloutEnd, RolloutInputs, RolloutProgress};
use crate::rollout::journal::{self, Record};
use crate::rollout::plan::RolloutPlan;
use crate::rollout::state::{Approval, Event, RolloutState};
use crate::rollout::status::{hook_state_word, hook_word, status_json, where_it_stands};
use crate::runtime::Runtime;

pub(crate) const ROLLOUT_ABOUT: &str = "\
Walk a change through the plan's checkpoints: at each one, run its promote
hook, wait its observation window, run its experiments and validators, and
decide its gate. A pass goes on; a warning goes on or pauses (per plan); an
inconclusive gate pauses until approved; a failure rolls back: the rollback
hooks of every promoted checkpoint run newest first, then the plan's
[rollout] verify validators must prove the baseline is back. A failure past
an irreversible checkpoint freezes the rollout there instead.

Every step is recorded, before it is acted on, in a hash-chained journal
(<state-dir>/<id>.jsonl), and where a rollout stands is rebuilt from it:
kill cairn at any moment and `resume` goes on from the last recorded step
(no finished hook runs again; an interrupted one runs again with the same
idempotency key).

Examples:
  cairn rollout start --plan examples/rollout/plan.toml \\
      --change examples/changes/workflow-hardening --id demo
  cairn rollout status demo
  cairn rollout approve demo --by alice --role security --comment 'checked'
  cairn rollout resume demo
  cairn rollout abort demo --by bob --reason 'customer escalation'";

pub(crate) const ROLLOUT_EXIT_CODES: &str = "\
Exit codes:
  0   the rollout completed (status, approve: recorded)
  1   a checkpoint failed; rolled back, and the rollback verified
  4   paused: waiting for approval (`cairn rollout approve`)
  5   rolled back, but the rollback did not verify (or a rollback hook failed):
      the baseline is NOT proven back
  6   frozen at an irreversible checkpoint: rolled back down to it, not past it
  64  wrong command line, unknown rollout id, nothing to approve or abort
  65  invalid plan (file:line:column)
  66  the change or metrics could not be read, or they changed since the
      rollout started (resume --allow-changed takes them anyway)
  67  a plugin could not be built or loaded
  69  an experiment could not start
  70  internal error
  74  the journal failed verification (tampered, or not a journal)
  75  the rollout is running in another cairn process (its journal is locked)
  130, 143  stopped by SIGINT or SIGTERM (resume goes on from the last step)";

#[derive(Debug, Subcommand)]
pub(crate) enum RolloutCommand {
    /// Start a rollout of a change and drive it as far as it goes.
    #[command(after_help = ROLLOUT_EXIT_CODES)]
    Start(StartArgs),
    /// Go on with a rollout from its last recorded step (after a pause, a
    /// crash or a signal).
    #[command(after_help = ROLLOUT_EXIT_CODES)]
    Resume(ResumeArgs),
    /// Approve a paused rollout (one role at a time); the last approval
    /// needed resumes it.
    #[command(after_help = ROLLOUT_EXIT_CODES)]
    Approve(ApproveArgs),
    /// Stop a rollout and roll it back.
    #[command(after_help = ROLLOUT_EXIT_CODES)]
    Abort(AbortArgs),
    /// Where a rollout stands and why (every rollout, without an id).
    #[command(after_help = ROLLOUT_EXIT_CODES)]
    Status(StatusArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// Check a journal's hash chain and checksums; name the first broken
    /// record (exit 74) or a torn last record (left by a crash, repaired
    /// on resume).
    Verify {
        /// The journal (<state-dir>/<id>.jsonl).
        journal: PathBuf,
    },
    /// Print a journal for people, one record per line.
    Show { journal: PathBuf },
}

#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// Where rollout journals live. Default: $CAIRN_STATE_DIR, else
    /// .cairn/rollouts in the current directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InputArgs {
    /// The plan (default for resume/approve/abort: the one the rollout
    /// started with).
    #[arg(long, value_name = "FILE")]
    pub(crate) plan: Option<PathBuf>,
    /// The change (default for resume/approve/abort: the one the rollout
    /// started with).
    #[arg(long, value_name = "DIR|FILE")]
    pub(crate) change: Option<PathBuf>,
    /// Identifier of the change, passed to the validators and hooks.
    #[arg(long, value_name = "ID", default_value = "")]
    pub(crate) change_id: String,
    /// Who approved fault experiments at production checkpoints.
    #[arg(long, value_name = "NAME")]
    pub(crate) approve_experiments: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
    /// The rollout's id (letters, digits, - _ .). Default: r-<time>-<hex>.
    #[arg(long)]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
    /// Go on even if the plan, the change or a plugin changed since the
    /// rollout started (recorded in the journal).
    #[arg(long)]
    pub(crate) allow_changed: bool,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    pub(crate) id: String,
    /// Who approves (recorded).
    #[arg(long)]
    pub(crate) by: String,
    /// The role approving, when the checkpoint asks for roles.
    #[arg(long, default_value = "any")]
    pub(crate) role: String,
    #[arg(long)]
    pub(crate) comment: Option<String>,
    /// Only record the approval; do not resume even if it was the last one.
    #[arg(long)]
    pub(crate) no_resume: bool,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AbortArgs {
    pub(crate) id: String,
    /// Who aborts (recorded).
    #[arg(long)]
    pub(crate) by: String,
    /// Why (recorded, and told to the notify hook).
    #[arg(long)]
    pub(crate) reason: String,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The rollout (default: list every rollout in the state directory).
    pub(crate) id: Option<String>,
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub(crate) format: StatusFormat,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    Human,
    Json,
}

fn state_dir(args: &StateArgs) -> PathBuf {
    args.state_dir
        .clone()
        .or_else(|| std::env::var_os("CAIRN_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".cairn").join("rollouts"))
}

/// Prints each step as it is recorded.
struct Printer {
    terminal: bool,
}

impl LoadProgress for Printer {
    fn compiling(&self, plugin: &str, _bytes: usize) {
        if self.terminal {
            eprintln!(
                "compiling {} (first use; cached after)…",
                single_line(plugin)
            );
        }
    }
}

impl RolloutProgress for Printer {
    fn repaired(&self, torn: &journal::TornTail) {
        println!(
            "  journal: the last record (line {}, {} bytes) was torn by a crash mid-write; \
             dropped and the repair recorded (sha256 {})",
            torn.line,
            torn.dropped_bytes,
            single_line(&torn.dropped_sha256)
        );
    }

    fn recorded(&self, record: &Record, event: &Event) {
        if let Some(line) = step_line(record, event) {
            println!("{line}");
        }
    }
}

/// One line for a recorded step (`None` for steps not worth a line).
fn step_line(record: &Record, event: &Event) -> Option<String> {
    let text = match event {
        Event::RolloutStarted(started) => format!(
            "rollout {} · plan {} · change {}",
            single_line(&record.rollout),
            single_line(&started.plan),
            single_line(&started.change)
        ),
        Event::Resumed(resumed) if resumed.changed.is_empty() => "resumed".to_owned(),
        Event::Resumed(resumed) => format!(
            "resumed with changed inputs: {}",
            single_line(&resumed.changed.join(", "))
        ),
        Event::CheckpointStarted { checkpoint } => {
            format!("{:<14} started", single_line(checkpoint))
        }
        Event::HookStarted(start) if start.run > 1 => format!(
            "{:<14} {} hook runs again (run {}, key {}): its end was never recorded",
            single_line(&start.checkpoint),
            hook_word(start.hook),
            start.run,
            single_line(record.key.as_deref().unwrap_or("-"))
        ),
        Event::HookStarted(_) => return None,
        Event::HookFinished(end) => format!(
            "{:<14} {} hook {}",
            single_line(&end.checkpoint),
            hook_word(end.hook),
            if end.ok { "ok" } else { "FAILED" }
        ),
        Event::ObserveStarted {
            checkpoint,
            window_ms,
        } if *window_ms > 0 => format!(
            "{:<14} observing for {} ms",
            single_line(checkpoint),
            window_ms
        ),
        Event::ObserveStarted { .. } | Event::Observed { .. } => return None,
        Event::CheckpointJudged {
            checkpoint,
            outcome,
            report,
        } => {
            let mut text = format!(
                "{:<14} gate {}",
                single_line(checkpoint),
                outcome.to_string().to_uppercase()
            );
            // Why, when it did not pass: each validator that did not.
            let validators = report["checkpoints"][0]["validators"].as_array();
            for validator in validators.into_iter().flatten() {
                let verdict = validator["outcome"].as_str().unwrap_or("?");
                if verdict == "pass" {
                    continue;
                }
                text.push_str(&format!(
                    "\n                 {} {}: {}",
                    single_line(validator["name"].as_str().unwrap_or("?")),
                    verdict.to_uppercase(),
                    single_line(validator["summary"].as_str().unwrap_or(""))
                ));
            }
            text
        }
        Event::CheckpointPassed { .. } => return None,
        Event::Paused(pause) => {
            let mut text = format!(
                "{:<14} PAUSED: {}",
                single_line(&pause.checkpoint),
                single_line(&pause.detail)
            );
            let roles = if pause.roles.is_empty() {
                "one approval (any role)".to_owned()
            } else {
                pause.roles.join(", ")
            };
            text.push_str(&format!(
                "\n               waiting for: {}",
                single_line(&roles)
            ));
            for (role, who) in pause.owners.named() {
                text.push_str(&format!("\n               {role}: {}", single_line(who)));
            }
            if let Some(runbook) = &pause.runbook {
                text.push_str(&format!(
                    "\n               runbook: {}",
                    single_line(runbook)
                ));
            }
            text
        }
        Event::Approved(approval) => format!(
            "{:<14} approved by {} as {}{}",
            single_line(&approval.checkpoint),
            single_line(&approval.by),
            single_line(&approval.role),
            approval
                .comment
                .as_deref()
                .map(|c| format!(": {}", single_line(c)))
                .unwrap_or_default()
        ),
        Event::AbortRequested { by, reason } => format!(
            "abort requested by {}: {}",
            single_line(by),
            single_line(reason)
        ),
        Event::RollbackStarted(start) => {
            let undo = if start.undo.is_empty() {
                "nothing".to_owned()
            } else {
                start.undo.join(", ")
            };
            let mut text = format!(
                "ROLLBACK: {}; undoing {}",
                single_line(&start.reason),
                single_line(&undo)
            );
            if let Some(frozen_at) = &start.frozen_at {
                text.push_str(&format!(
                    " (stops at irreversible `{}`)",
                    single_line(frozen_at)
                ));
            }
            text
        }
        Event::RollbackVerified { .. } => {
            "verify         PASS: the verification validators prove the baseline is back".to_owned()
        }
        Event::RollbackUnverified { reason, .. } => {
            format!("verify         NOT VERIFIED: {}", single_line(reason))
        }
        Event::Frozen { reason, .. } => format!("FROZEN: {}", single_line(reason)),
        Event::Completed => "completed: every checkpoint passed".to_owned(),
        Event::Notified {
            ok, event, detail, ..
        } => {
            if *ok {
                return None;
            }
            format!(
                "notify hook FAILED for {}: {}",
                single_line(event),
                single_line(detail)
            )
        }
    };
    Some(format!("  {text}"))
}

/// The plan, rollout plan and change a command runs over: as given, else
/// as the rollout's journal recorded them.
struct Loaded {
    plan: Plan,
    rollout_plan: RolloutPlan,
    change_path: PathBuf,
    change: Arc<crate::Change>,
}

fn load_inputs(inputs: &InputArgs, recorded: Option<&RolloutState>) -> Result<Loaded, CliError> {
    let started = recorded.and_then(|state| state.started.as_ref());
    let plan_path = match (&inputs.plan, started) {
        (Some(path), _) => path.clone(),
        (None, Some(started)) => PathBuf::from(&started.plan),
        (None, None) => return Err(CliError::Usage("--plan is required".to_owned())),
    };
    let change_path = match (&inputs.change, started) {
        (Some(path), _) => path.clone(),
        (None, Some(started)) => PathBuf::from(&started.change),
        (None, None) => return Err(CliError::Usage("--change is required".to_owned())),
    };
    let plan = Plan::load(&plan_path).map_err(CheckError::from)?;
    let rollout_plan = RolloutPlan::load(&plan).map_err(CheckError::from)?;
    let change = check::read_change(&change_path, None)?;
    Ok(Loaded {
        plan,
        rollout_plan,
        change_path,
        change: Arc::new(change),
    })
}

/// An absolute path where possible, so a resume from another directory
/// finds the same files.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

pub(crate) async fn run(runtime: &Runtime, command: RolloutCommand) -> Result<u8, CliError> {
    let printer = Printer {
        terminal: std::io::stderr().is_terminal(),
    };
    match command {
        RolloutCommand::Start(args) => {
            let dir = state_dir(&args.state);
            let mut loaded = load_inputs(&args.inputs, None)?;
            loaded.plan.path = absolute(&loaded.plan.path);
            loaded.change_path = absolute(&loaded.change_path);
            let id = args.id.unwrap_or_else(engine::new_id);
            let inputs = inputs_of(runtime, &loaded, &args.inputs);
            let result = engine::start(&inputs, engine::Store::Dir(&dir), &id, &printer).await;
            finish(result, &dir, &id)
        }
        RolloutCommand::Resume(args) => {
            let dir = state_dir(&args.state);
            let recorded = engine::status(&dir, &args.id).map_err(rollout_error)?;
            let loaded = load_inputs(&args.inputs, Some(&recorded))?;
            let inputs = inputs_of(runtime, &loaded, &args.inputs);
            let result = engine::resume(
                &inputs,
                engine::Store::Dir(&dir),
                &args.id,
                args.allow_changed,
                &printer,
            )
            .await;
            finish(result, &dir, &args.id)
        }
        RolloutCommand::Approve(args) => {
            let dir = state_dir(&args.state);
            let recorded = engine::status(&dir, &args.id).map_err(rollout_error)?;
            let loaded = load_inputs(&args.inputs, Some(&recorded))?;
            let inputs = inputs_of(runtime, &loaded, &args.inputs);
            let approval = Approval {
                checkpoint: String::new(),
                by: args.by,
                role: args.role,
                comment: args.comment,
            };
            let result = engine::approve(
                &inputs,
                engine::Store::Dir(&dir),
                &args.id,
                approval,
                !args.no_resume,
                &printer,
            )
            .await;
            finish(result, &dir, &args.id)
        }
        RolloutCommand::Abort(args) => {
            let dir = state_dir(&args.state);
            let recorded = engine::status(&dir, &args.id).map_err(rollout_error)?;
            let loaded = load_inputs(&args.inputs, Some(&recorded))?;
            let inputs = inputs_of(runtime, &loaded, &args.inputs);
            let result = engine::abort(
                &inputs,
                engine::Store::Dir(&dir),
                &args.id,
                &args.by,
                &args.reason,
                &printer,
            )
            .await;
            finish(result, &dir, &args.id)
        }
        RolloutCommand::Status(args) => status(&args),
    }
}

fn inputs_of<'a>(runtime: &'a Runtime, loaded: &'a Loaded, args: &InputArgs) -> RolloutInputs<'a> {
    RolloutInputs {
        runtime,
        plan: &loaded.plan,
        rollout_plan: &loaded.rollout_plan,
        change_path: &loaded.change_path,
        change: Arc::clone(&loaded.change),
        change_id: args.change_id.clone(),
        experiment_approval: args.approve_experiments.clone().map(check::Approval::now),
    }
}

/// Prints how the run ended and maps it to the exit code.
fn finish(
    result: Result<(RolloutState, RolloutEnd), engine::RolloutError>,
    dir: &Path,
    id: &str,
) -> Result<u8, CliError> {
    let (state, end) = result.map_err(rollout_error)?;
    let journal = engine::journal_path(dir, id);
    let (word, code) = match end {
        RolloutEnd::Completed => ("COMPLETED", exit::PASS),
        RolloutEnd::Paused => ("PAUSED", exit::ROLLOUT_PAUSED),
        RolloutEnd::RolledBack => ("ROLLED BACK (verified)", exit::FAIL),
        RolloutEnd::RollbackUnverified => ("ROLLED BACK, NOT VERIFIED", exit::ROLLBACK_UNVERIFIED),
        RolloutEnd::Frozen => ("FROZEN", exit::ROLLOUT_FROZEN),
    };
    println!();
    println!("result: {word}");
    if let Some(pause) = &state.pause {
        let missing = pause.missing_roles();
        for role in &missing {
            let role_flag = if role == "any" {
                String::new()
            } else {
                format!(" --role {}", single_line(role))
            };
            println!(
                "next:   cairn rollout approve {} --by NAME{role_flag}",
                single_line(id)
            );
        }
    }
    if end == RolloutEnd::RollbackUnverified {
        eprintln!(
            "cairn: the rollback of {} did NOT verify: the baseline is not proven back; \
             see `cairn rollout status {}`",
            single_line(id),
            single_line(id)
        );
    }
    println!("journal: {}", single_line(&journal.display().to_string()));
    Ok(code)
}

pub(crate) fn rollout_error(err: engine::RolloutError) -> CliError {
    CliError::Rollout(err)
}

fn status(args: &StatusArgs) -> Result<u8, CliError> {
    let dir = state_dir(&args.state);
    let Some(id) = &args.id else {
        let ids = engine::known_ids(&dir);
        if args.format == StatusFormat::Json {
            let list: Vec<serde_json::Value> = ids
                .iter()
                .filter_map(|id| engine::status(&dir, id).ok())
                .map(|state| status_json(&state))
                .collect();
            println!("{}", serde_json::Value::Array(list));
            return Ok(exit::PASS);
        }
        if ids.is_empty() {
            println!("no rollouts in {}", single_line(&dir.display().to_string()));
        }
        for id in ids {
            match engine::status(&dir, &id) {
                Ok(state) => println!(
                    "{:<28} {:<24} {}",
                    single_line(&id),
                    engine::phase_word(state.phase()),
                    single_line(&where_it_stands(&state))
                ),
                Err(err) => println!(
                    "{:<28} unreadable: {}",
                    single_line(&id),
                    single_line(&err.to_string())
                ),
            }
        }
        return Ok(exit::PASS);
    };
    let state = engine::status(&dir, id).map_err(rollout_error)?;
    match args.format {
        StatusFormat::Json => println!("{:#}", status_json(&state)),
        StatusFormat::Human => print!("{}", status_human(&state)),
    }
    Ok(exit::PASS)
}

fn status_human(state: &RolloutState) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "rollout {}: {}\n",
        single_line(&state.id),
        engine::phase_word(state.phase()).to_uppercase()
    ));
    if let Some(started) = &state.started {
        out.push_str(&format!("  plan     {}\n", single_line(&started.plan)));
        out.push_str(&format!("  change   {}\n", single_line(&started.change)));
    }
    out.push_str(&format!(
        "  why      {}\n",
        single_line(&where_it_stands(state))
    ));
    out.push_str("  checkpoints:\n");
    for checkpoint in &state.checkpoints {
        let gate = match (&checkpoint.judged, checkpoint.passed) {
            (_, Some(outcome)) => format!("passed ({outcome})"),
            (Some((outcome, _)), None) => format!("gate {outcome}"),
            (None, None) if checkpoint.started => "started".to_owned(),
            (None, None) => "not reached".to_owned(),
        };
        let hooks: Vec<String> = checkpoint
            .hooks
            .iter()
            .map(|(kind, hook)| {
                // People read the failures first: shouted, and words spaced.
                let word = match hook_state_word(hook) {
                    "failed" => "FAILED".to_owned(),
                    word => word.replace('-', " "),
                };
                format!("{} {word}", hook_word(*kind))
            })
            .collect();
        out.push_str(&format!(
            "    {:<14} {:<18} {}\n",
            single_line(&checkpoint.name),
            gate,
            hooks.join(", ")
        ));
    }
    if let Some(pause) = &state.pause {
        out.push_str(&format!(
            "  paused   at {}: {}\n",
            single_line(&pause.pause.checkpoint),
            single_line(pause.pause.reason.describe())
        ));
        for (approval, at) in &pause.approvals {
            out.push_str(&format!(
                "  approved {} as {} at {}\n",
                single_line(&approval.by),
                single_line(&approval.role),
                single_line(at)
            ));
        }
        out.push_str(&format!(
            "  waiting  for {}\n",
            single_line(&pause.missing_roles().join(", "))
        ));
        for (role, who) in pause.pause.owners.named() {
            out.push_str(&format!("  {role}: {}\n", single_line(who)));
        }
        if let Some(runbook) = &pause.pause.runbook {
            out.push_str(&format!("  runbook  {}\n", single_line(runbook)));
        }
    }
    out.push_str(&format!(
        "  journal  {} records, last at {}{}\n",
        state.records,
        single_line(state.last_at.as_deref().unwrap_or("-")),
        if state.repairs > 0 {
            format!(", {} torn tail(s) repaired", state.repairs)
        } else {
            String::new()
        }
    ));
    out
}

/// `cairn journal verify|show`.
pub(crate) fn journal_command(command: JournalCommand) -> Result<u8, CliError> {
    match command {
        JournalCommand::Verify { journal: path } => {
            let verification = journal::verify(&path)
                .map_err(|err| CliError::Rollout(engine::RolloutError::Journal(err)))?;
            let shown = single_line(&path.display().to_string()).into_owned();
            if let Some(broken) = &verification.broken {
                println!(
                    "{shown}: BROKEN at {}; {} record(s) before it verify",
                    single_line(&broken.to_string()),
                    verification.records
                );
                return Ok(exit::JOURNAL_BROKEN);
            }
            match &verification.torn_tail {
                Some(torn) => println!(
                    "{shown}: {} record(s) verify; the last line (line {}, {} bytes) is torn, \
                     as a crash mid-write leaves it: the next resume repairs it and records that",
                    verification.records, torn.line, torn.dropped_bytes
                ),
                None => println!(
                    "{shown}: {} record(s), hash chain and checksums verify",
                    verification.records
                ),
            }
            Ok(exit::PASS)
        }
        JournalCommand::Show { journal: path } => {
            let read = journal::read(&path)
                .map_err(|err| CliError::Rollout(engine::RolloutError::Journal(err)))?;
            print!("{}", journal::render(&read.records));
            if let Some(torn) = &read.torn_tail {
                println!(
                    "(line {}: a torn record of {} bytes, repaired on the next resume)",
                    torn.line, torn.dropped_bytes
                );
            }
            Ok(exit::PASS)
        }
    }
}
