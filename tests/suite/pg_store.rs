//! The PostgreSQL rollout store against a real PostgreSQL (one server per
//! test, see `cairn_tests::postgres`): records round-trip as the file
//! journal's exact lines; a tampered row is named; only the holder of an
//! unexpired lease can append, a lease is taken over only once expired, and
//! concurrent writers cannot fork the chain; `claimable` and a concurrent
//! `migrate`.

use std::time::Duration;

use cairn_host::rollout::journal::{self, BrokenReason, CREATED_KIND, Journal};
use cairn_host::rollout::pg::{self, PgError, PgJournal, PgStore, RolloutRow};
use cairn_tests::postgres::Postgres;
use cairn_tests::within;
use serde_json::json;

/// The outer bound of every test here.
const BOUND: Duration = Duration::from_secs(90);
const LONG: Duration = Duration::from_secs(60);

/// A fresh server (started off the runtime's threads).
async fn server() -> Postgres {
    let server = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("the start task")
        .unwrap_or_else(|err| panic!("PostgreSQL does not start: {err}"));
    eprintln!("PostgreSQL started in {:?}", server.startup);
    server
}

/// A fresh server and a store on it, migrated.
async fn store() -> (Postgres, PgStore) {
    let server = server().await;
    let store = PgStore::connect(&server.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    (server, store)
}

/// A plain client, to look at and tamper with rows behind the store's back.
async fn raw(server: &Postgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// The journal rows of `rollout`, in seq order.
async fn lines(client: &tokio_postgres::Client, rollout: &str) -> Vec<Vec<u8>> {
    client
        .query(
            "SELECT line FROM cairn_journal WHERE rollout = $1 ORDER BY seq",
            &[&rollout],
        )
        .await
        .expect("select")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Registers `id` and gives its lease to `owner` for a minute.
async fn leased(store: &PgStore, id: &str, owner: &str) {
    store
        .register_rollout(id, "acme", "[plan]\n", b"change")
        .await
        .expect("register");
    assert!(store.try_acquire(id, owner, LONG).await.expect("acquire"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_and_their_lines_are_a_file_journal_that_verifies() {
    within(BOUND, async {
        let (server, store) = store().await;
        leased(&store, "r1", "a").await;
        let mut journal = PgJournal::create(&store, "r1", "a").await.expect("create");
        let mut written = vec![
            journal
                .append("rollout-started", Some("r1/start"), json!({ "plan": "p" }))
                .await
                .expect("append"),
            journal
                .append(
                    "verdict",
                    None,
                    json!({ "z": 1, "a": "é \"quoted\" \n\u{1b}", "list": [1, 2.5, null] }),
                )
                .await
                .expect("append"),
        ];
        assert_eq!(journal.last_seq(), 3);

        let read = pg::records(&store, "r1").await.expect("records");
        assert_eq!(read.len(), 3);
        assert_eq!(read[1..], written[..]);
        let (mut reopened, opened) = PgJournal::open(&store, "r1", "a").await.expect("open");
        assert_eq!(opened, read);
        assert_eq!(reopened.last_seq(), 3);
        written.push(
            reopened
                .append("step", Some("k"), json!({}))
                .await
                .expect("append after reopening"),
        );
        assert_eq!(written[2].seq, 4);

        // Record 1 is what the file journal writes first (all but `at`).
        let dir = tempfile::tempdir().expect("temp dir");
        let file_journal = dir.path().join("file.jsonl");
        drop(Journal::create(&file_journal, "r1").expect("file journal"));
        let mut first = journal::read(&file_journal).expect("read").records[0].clone();
        first.at = read[0].at.clone();
        assert_eq!(read[0], first);
        assert_eq!(read[0].kind, CREATED_KIND);

        // The rows, concatenated, are a journal file: same lines, CRCs and
        // chain; the file journal verifies it, reads the same records, and
        // can carry its chain on.
        let rows = lines(&raw(&server).await, "r1").await;
        let path = dir.path().join("from-pg.jsonl");
        std::fs::write(&path, rows.concat()).expect("write");
        let verification = journal::verify(&path).expect("verify");
        assert!(
            verification.is_intact() && verification.torn_tail.is_none(),
            "{verification:?}"
        );
        assert_eq!(verification.records, 4);
        let from_file = journal::read(&path).expect("read").records;
        assert_eq!(from_file, pg::records(&store, "r1").await.expect("records"));
        let mut opened = Journal::open(&path).expect("open as a file journal");
        assert!(opened.repaired.is_none());
        opened
            .journal
            .append("step", None, json!({}))
            .expect("the file journal continues the chain");
        assert!(journal::verify(&path).expect("verify").is_intact());

        let verification = pg::verify(&store, "r1").await.expect("verify");
        assert!(verification.is_intact(), "{verification:?}");
        assert_eq!(
            (verification.records, verification.rollout.as_deref()),
            (4, Some("r1"))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_row_is_named_by_open_and_verify_as_journal_verify_names_it() {
    within(BOUND, async {
        let (server, store) = store().await;
        leased(&store, "r1", "a").await;
        let mut journal = PgJournal::create(&store, "r1", "a").await.expect("create");
        for i in 0..4 {
            journal
                .append("step", None, json!({ "i": i, "state": "healthy" }))
                .await
                .expect("append");
        }
        let client = raw(&server).await;
        let original = lines(&client, "r1").await;

        // One byte of record 3's body changed.
        let mut edited = original[2].clone();
        let at = edited
            .windows(7)
            .position(|w| w == b"healthy")
            .expect("body");
        edited[at] = b'H';
        client
            .execute(
                "UPDATE cairn_journal SET line = $1 WHERE rollout = 'r1' AND seq = 3",
                &[&edited],
            )
            .await
            .expect("tamper");
        let err = PgJournal::open(&store, "r1", "a")
            .await
            .expect_err("a tampered journal is refused");
        let PgError::Broken { broken, .. } = &err else {
            panic!("expected Broken, got {err:?}");
        };
        assert_eq!((broken.line, &broken.reason), (3, &BrokenReason::Checksum));
        assert!(err.to_string().contains("record 3: checksum"), "{err}");
        assert!(matches!(
            pg::records(&store, "r1").await,
            Err(PgError::Broken { .. })
        ));
        let verification = pg::verify(&store, "r1").await.expect("verify");
        assert_eq!(verification.records, 2);
        assert_eq!(verification.broken.as_ref(), Some(broken));
        // The file journal says the same of the same bytes.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, lines(&client, "r1").await.concat()).expect("write");
        assert_eq!(
            journal::verify(&path).expect("verify").broken.as_ref(),
            Some(broken)
        );

        // Record 2 deleted instead: record 3 is out of sequence.
        client
            .execute(
                "UPDATE cairn_journal SET line = $1 WHERE rollout = 'r1' AND seq = 3",
                &[&original[2]],
            )
            .await
            .expect("restore");
        assert!(pg::verify(&store, "r1").await.expect("verify").is_intact());
        client
            .execute(
                "DELETE FROM cairn_journal WHERE rollout = 'r1' AND seq = 2",
                &[],
            )
            .await
            .expect("delete");
        let err = PgJournal::open(&store, "r1", "a")
            .await
            .expect_err("a journal with a missing record is refused");
        assert!(
            err.to_string().contains("record 3: out of sequence"),
            "{err}"
        );
        let verification = pg::verify(&store, "r1").await.expect("verify");
        assert_eq!(verification.records, 1);
        assert_eq!(
            verification.broken.map(|b| b.reason),
            Some(BrokenReason::Sequence {
                expected: 2,
                found: 3
            })
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_the_lease_cannot_append_and_nothing_is_written() {
    within(BOUND, async {
        let (server, store) = store().await;
        let client = raw(&server).await;
        leased(&store, "r1", "a").await;
        let mut journal = PgJournal::create(&store, "r1", "a").await.expect("create");
        journal
            .append("step", None, json!({}))
            .await
            .expect("append");

        // Replica b reads the journal (no lease needed), cannot append.
        let (mut other, records) = PgJournal::open(&store, "r1", "b").await.expect("open");
        assert_eq!(records.len(), 2);
        let err = other
            .append("step", None, json!({ "from": "b" }))
            .await
            .expect_err("no lease, no append");
        assert!(
            matches!(&err, PgError::LeaseLost { rollout, owner } if rollout == "r1" && owner == "b"),
            "{err:?}"
        );
        assert_eq!(lines(&client, "r1").await.len(), 2, "nothing written");
        // After a failed append the handle refuses to append at all.
        assert!(matches!(
            other.append("step", None, json!({})).await,
            Err(PgError::Unusable { .. })
        ));

        // Nor can b create the journal of a rollout it holds no lease of.
        store
            .register_rollout("r2", "acme", "", b"")
            .await
            .expect("register");
        assert!(matches!(
            PgJournal::create(&store, "r2", "b").await,
            Err(PgError::LeaseLost { .. })
        ));
        assert!(lines(&client, "r2").await.is_empty());
        assert_eq!(
            pg::verify(&store, "r2")
                .await
                .expect("verify")
                .broken
                .map(|b| b.reason),
            Some(BrokenReason::Empty)
        );

        // A released lease is no lease: a's own append now fails too.
        store.release("r1", "a").await.expect("release");
        assert!(matches!(
            journal.append("step", None, json!({})).await,
            Err(PgError::LeaseLost { .. })
        ));
        assert_eq!(lines(&client, "r1").await.len(), 2);
        assert!(pg::verify(&store, "r1").await.expect("verify").is_intact());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_taken_over_only_after_it_expires_and_the_old_owner_then_cannot_append() {
    within(BOUND, async {
        let (server, store) = store().await;
        let client = raw(&server).await;
        store
            .register_rollout("r1", "acme", "", b"")
            .await
            .expect("register");
        let ttl = Duration::from_secs(1);
        assert!(store.try_acquire("r1", "a", ttl).await.expect("acquire"));
        let mut a = PgJournal::create(&store, "r1", "a").await.expect("create");
        assert!(
            !store.try_acquire("r1", "b", ttl).await.expect("acquire"),
            "a holds it"
        );
        assert!(
            !store.renew("r1", "b", ttl).await.expect("renew"),
            "b cannot renew a's lease"
        );
        assert!(
            store.try_acquire("r1", "a", ttl).await.expect("acquire"),
            "a may take its own lease again"
        );
        a.append("step", None, json!({ "by": "a" }))
            .await
            .expect("a appends");

        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(
            store.try_acquire("r1", "b", LONG).await.expect("acquire"),
            "expired: b takes it over"
        );
        let err = a
            .append("step", None, json!({ "by": "a, late" }))
            .await
            .expect_err("a lost its lease");
        assert!(matches!(err, PgError::LeaseLost { .. }), "{err:?}");
        assert!(
            !store.renew("r1", "a", LONG).await.expect("renew"),
            "a's renew says the lease is lost"
        );
        assert!(!store.try_acquire("r1", "a", LONG).await.expect("acquire"));

        let (mut b, records) = PgJournal::open(&store, "r1", "b").await.expect("open");
        assert_eq!(records.len(), 2);
        b.append("step", None, json!({ "by": "b" }))
            .await
            .expect("b appends");
        assert_eq!(lines(&client, "r1").await.len(), 3);
        let bodies: Vec<_> = pg::records(&store, "r1")
            .await
            .expect("records")
            .into_iter()
            .map(|r| r.body)
            .collect();
        assert_eq!(bodies[1..], [json!({ "by": "a" }), json!({ "by": "b" })]);

        // Released, it is free at once.
        store
            .release("r1", "a")
            .await
            .expect("release of a lease a lacks");
        assert!(!store.try_acquire("r1", "a", LONG).await.expect("acquire"));
        store.release("r1", "b").await.expect("release");
        assert!(store.try_acquire("r1", "a", LONG).await.expect("acquire"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_extends_only_a_live_lease_of_its_owner() {
    within(BOUND, async {
        let (_server, store) = store().await;
        store
            .register_rollout("r1", "acme", "", b"")
            .await
            .expect("register");
        assert!(
            !store
                .renew("r1", "a", LONG)
                .await
                .expect("renew with no lease")
        );
        let ttl = Duration::from_millis(800);
        assert!(store.try_acquire("r1", "a", ttl).await.expect("acquire"));
        assert!(store.renew("r1", "a", LONG).await.expect("renew"));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(
            !store.try_acquire("r1", "b", ttl).await.expect("acquire"),
            "renewed past its first expiry"
        );
        assert!(store.renew("r1", "a", ttl).await.expect("renew"));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(
            !store.renew("r1", "a", LONG).await.expect("renew"),
            "an expired lease is not renewed"
        );
        assert!(matches!(
            store.renew("r1", "a", Duration::ZERO).await,
            Err(PgError::Ttl { .. })
        ));
        assert!(matches!(
            store.try_acquire("nope", "a", LONG).await,
            Err(PgError::UnknownRollout { .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_two_handles_cannot_fork_the_chain() {
    within(BOUND, async {
        let (server, store) = store().await;
        // A second connection, as a second replica (or task) would have.
        let other = PgStore::connect(&server.url()).await.expect("connect");
        leased(&store, "r1", "a").await;
        drop(PgJournal::create(&store, "r1", "a").await.expect("create"));
        let rounds = 20;
        for round in 0..rounds {
            let (mut one, _) = PgJournal::open(&store, "r1", "a").await.expect("open");
            let (mut two, _) = PgJournal::open(&other, "r1", "a").await.expect("open");
            let key_one = format!("{round}/one");
            let key_two = format!("{round}/two");
            let (first, second) = tokio::join!(
                one.append("step", Some(&key_one), json!({ "round": round })),
                two.append("step", Some(&key_two), json!({ "round": round })),
            );
            let (won, lost) = match (first, second) {
                (Ok(record), Err(err)) | (Err(err), Ok(record)) => (record, err),
                (first, second) => {
                    panic!("round {round}: exactly one must win: {first:?} / {second:?}")
                }
            };
            assert_eq!(won.seq, round + 2);
            assert!(
                matches!(lost, PgError::Conflict { seq, .. } if seq == won.seq),
                "round {round}: {lost:?}"
            );
        }
        let verification = pg::verify(&store, "r1").await.expect("verify");
        assert!(verification.is_intact(), "{verification:?}");
        assert_eq!(verification.records, rounds + 1);
        let records = pg::records(&store, "r1").await.expect("records");
        for (round, record) in records[1..].iter().enumerate() {
            assert_eq!(record.body, json!({ "round": round }));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimable_lists_only_unfinished_rollouts_without_a_live_lease() {
    within(BOUND, async {
        let (_server, store) = store().await;
        for id in ["free", "held", "expired", "finished", "finished-expired"] {
            store
                .register_rollout(id, "acme", "", b"")
                .await
                .expect("register");
        }
        assert!(store.try_acquire("held", "a", LONG).await.expect("acquire"));
        for id in ["expired", "finished-expired"] {
            assert!(
                store
                    .try_acquire(id, "a", Duration::from_millis(1))
                    .await
                    .expect("acquire")
            );
        }
        store.mark_finished("finished").await.expect("finish");
        store
            .mark_finished("finished-expired")
            .await
            .expect("finish");
        tokio::time::sleep(Duration::from_millis(50)).await;

        assert_eq!(
            store.claimable(10).await.expect("claimable"),
            ["free", "expired"]
        );
        assert_eq!(store.claimable(1).await.expect("claimable"), ["free"]);
        store.release("held", "a").await.expect("release");
        assert_eq!(
            store.claimable(10).await.expect("claimable"),
            ["free", "held", "expired"]
        );
        assert!(store.try_acquire("free", "b", LONG).await.expect("acquire"));
        assert_eq!(
            store.claimable(10).await.expect("claimable"),
            ["held", "expired"]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_run_concurrently_by_three_replicas_succeeds() {
    within(BOUND, async {
        let server = server().await;
        let admin = raw(&server).await;
        // Several fresh databases, to give the race more than one chance.
        for db in ["m1", "m2", "m3"] {
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .expect("create database");
            let url = server.url_of(db);
            let (a, b, c) = tokio::join!(
                PgStore::connect(&url),
                PgStore::connect(&url),
                PgStore::connect(&url)
            );
            let replicas = [a.expect("a"), b.expect("b"), c.expect("c")];
            let (a, b, c) = tokio::join!(
                replicas[0].migrate(),
                replicas[1].migrate(),
                replicas[2].migrate()
            );
            for result in [a, b, c] {
                result.expect("a concurrent migrate succeeds");
            }
            // Idempotent, and the tables work.
            replicas[1].migrate().await.expect("migrate again");
            leased(&replicas[0], "r1", "a").await;
            PgJournal::create(&replicas[2], "r1", "a")
                .await
                .expect("create");
            assert!(
                pg::verify(&replicas[1], "r1")
                    .await
                    .expect("verify")
                    .is_intact()
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_are_registered_once_and_their_inputs_read_back() {
    within(BOUND, async {
        let (_server, store) = store().await;
        let change = vec![0u8, 1, 2, 255, b'\n'];
        store
            .register_rollout("r1", "acme", "[rollout]\nverify = []\n", &change)
            .await
            .expect("register");
        store
            .register_rollout("r2", "globex", "plan 2", b"{}")
            .await
            .expect("register");
        let err = store
            .register_rollout("r1", "other", "other plan", b"x")
            .await
            .expect_err("an existing id is refused");
        assert!(
            matches!(&err, PgError::AlreadyExists { id } if id == "r1"),
            "{err:?}"
        );
        assert_eq!(
            store.rollout_inputs("r1").await.expect("inputs"),
            Some(RolloutRow {
                id: "r1".to_owned(),
                tenant: "acme".to_owned(),
                plan: "[rollout]\nverify = []\n".to_owned(),
                change: change.clone(),
                finished: false,
            }),
            "left as it was"
        );
        assert_eq!(store.rollout_inputs("nope").await.expect("inputs"), None);

        let all = store.list_rollouts(None).await.expect("list");
        let ids: Vec<_> = all.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        let acme = store.list_rollouts(Some("acme")).await.expect("list");
        assert_eq!(acme.len(), 1);
        assert_eq!(
            (
                acme[0].id.as_str(),
                acme[0].tenant.as_str(),
                acme[0].finished
            ),
            ("r1", "acme", false)
        );

        store.mark_finished("r1").await.expect("finish");
        assert!(
            store
                .rollout_inputs("r1")
                .await
                .expect("inputs")
                .expect("r1")
                .finished
        );
        assert!(matches!(
            store.mark_finished("nope").await,
            Err(PgError::UnknownRollout { .. })
        ));

        // One journal per rollout; none for an unknown one.
        assert!(store.try_acquire("r2", "a", LONG).await.expect("acquire"));
        drop(PgJournal::create(&store, "r2", "a").await.expect("create"));
        assert!(matches!(
            PgJournal::create(&store, "r2", "a").await,
            Err(PgError::JournalExists { .. })
        ));
        assert!(matches!(
            PgJournal::open(&store, "nope", "a").await,
            Err(PgError::NoJournal { .. })
        ));
        assert!(matches!(
            pg::records(&store, "r1").await,
            Err(PgError::NoJournal { .. })
        ));
    })
    .await;
}

/// `Postgres::start` is quick enough for one server per test, and a dropped
/// server is stopped (its port closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_server_starts_in_seconds_and_stops_when_dropped() {
    within(BOUND, async {
        let server = server().await;
        assert!(
            server.startup < Duration::from_secs(20),
            "took {:?}",
            server.startup
        );
        let url = server.url();
        let client = raw(&server).await;
        let one: i32 = client
            .query_one("SELECT 1", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(one, 1);
        drop(client);
        tokio::task::spawn_blocking(move || drop(server))
            .await
            .expect("drop");
        assert!(
            PgStore::connect(&url).await.is_err(),
            "the server is gone after drop"
        );
    })
    .await;
}
