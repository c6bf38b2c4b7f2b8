//! The event feed behind `WatchEvents`: every caller follows the events of exactly the cases it
//! may see, pushed as they commit, resumable from any sequence it has seen.
//!
//! One hub per process reads new events once and hands them to every follower:
//!
//! - **Woken, not polling.** A commit through this process wakes the hub directly ([`Wake`]);
//!   on PostgreSQL every replica also listens on [`storage::cases::EVENTS_CHANNEL`], which each
//!   event-writing transaction notifies at commit, so an event committed through one replica
//!   reaches streams held by another. A slow safety read (every [`SAFETY_READ`], only while
//!   someone follows) covers a notification lost with a listener's connection. An idle stream
//!   costs no query at all: it waits on the hub's broadcast.
//! - **No gap, no duplicate.** A follower subscribes to the broadcast first, then reads its
//!   backlog from the database (after its `after_sequence`), then takes the broadcast, skipping
//!   what it has passed. Sequence order is commit order (a row lock held to commit numbers the
//!   events), so the hub reading `seq > tail` never skips a late committer.
//! - **Bounded.** The broadcast keeps [`BUFFER`] batches; a follower that falls further behind
//!   is ended with UNAVAILABLE and told to resume after the last sequence it received. A stream
//!   is pulled, so a slow reader's backlog never grows memory.
//! - **The database away** pauses streams: a live stream hears nothing until the hub reads
//!   again (woken when its listener reconnects, or by the safety read); a stream still reading
//!   its backlog retries with a growing pause. No stream ends for it.
//! - **Shutdown** ends every stream at once with UNAVAILABLE, so clients resume elsewhere.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, broadcast, watch};

use super::LiveDirectory;
use crate::{
    domain::{
        Caller, DomainError, DomainResult,
        directory::Tier,
        event::{EventKind, FeedEvent},
        scope::Scope,
    },
    storage::{self, StorageError},
};

/// Events read per query, by the hub and by a follower's backlog.
const PAGE: u64 = 500;
/// Batches the broadcast keeps for followers that are behind.
pub const BUFFER: usize = 1024;
/// How often the hub reads anyway while someone follows: a notification can be lost when the
/// listener's connection is.
pub const SAFETY_READ: Duration = Duration::from_secs(10);
/// How long a follower waits before reading its backlog again while the database is away.
const RETRY_BACKLOG: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// What a follower asks for.
#[derive(Debug, Clone, Default)]
pub struct Follow {
    /// Resume after this sequence; 0 from the start.
    pub after: i64,
    /// Only these kinds (their contract names); empty for all.
    pub kinds: Vec<String>,
    /// Only cases in this region's subtree.
    pub region_code: String,
}

/// Wakes the hub after a commit that appended events.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn events_committed(&self) {
        self.0.notify_one();
    }
}

type Batch = Arc<[FeedEvent]>;

/// The process's event hub.
#[derive(Debug)]
pub struct EventHub {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    bus: broadcast::Sender<Batch>,
    wake: Wake,
    stop: watch::Receiver<bool>,
    /// Reads of the event table, by the hub and by followers' backlogs.
    reads: Arc<AtomicU64>,
    /// The last sequence the hub has read.
    tail: std::sync::atomic::AtomicI64,
}

impl EventHub {
    /// How many times this hub and its followers have read the event table: what shows that
    /// idle streams cost no queries.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The last sequence the hub has read and broadcast.
    pub fn tail(&self) -> i64 {
        self.tail.load(Ordering::Relaxed)
    }

    /// Streams following now.
    pub fn followers(&self) -> usize {
        self.bus.receiver_count()
    }

    /// Starts the hub's reader (and, on PostgreSQL, its listener) until `stop` turns true.
    /// `buffer`: the batches kept for followers that are behind ([`BUFFER`] in service).
    pub async fn start(
        db: DatabaseConnection,
        directory: Arc<LiveDirectory>,
        listen: Option<sea_orm::sqlx::postgres::PgConnectOptions>,
        wake: Wake,
        stop: watch::Receiver<bool>,
        buffer: usize,
    ) -> Result<Arc<EventHub>, StorageError> {
        let tail = storage::cases::last_event_seq(&db).await?;
        let (bus, _) = broadcast::channel(buffer.max(1));
        let hub = Arc::new(EventHub {
            db,
            directory,
            bus,
            wake,
            stop,
            reads: Arc::new(AtomicU64::new(0)),
            tail: std::sync::atomic::AtomicI64::new(tail),
        });
        tokio::spawn(hub.clone().read_forever(tail));
        if let Some(options) = listen {
            tokio::spawn(listen_forever(options, hub.wake.clone(), hub.stop.clone()));
        }
        Ok(hub)
    }

    /// Reads what has committed since `tail` whenever woken, and broadcasts it.
    async fn read_forever(self: Arc<Self>, mut tail: i64) {
        let mut stop = self.stop.clone();
        let mut safety = tokio::time::interval(SAFETY_READ);
        safety.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                () = self.wake.0.notified() => {}
                _ = safety.tick() => {
                    if self.bus.receiver_count() == 0 {
                        // Nobody follows: keep the tail current without reading events.
                        match storage::cases::last_event_seq(&self.db).await {
                            Ok(last) => tail = tail.max(last),
                            Err(e) => tracing::warn!(error = %e, "event hub: reading the head failed"),
                        }
                        continue;
                    }
                }
            }
            loop {
                self.reads.fetch_add(1, Ordering::Relaxed);
                match storage::cases::feed_after(&self.db, tail, PAGE).await {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => {
                        let full = page.len() as u64 == PAGE;
                        if let Some(last) = page.last() {
                            tail = last.event.seq;
                            self.tail.store(tail, Ordering::Relaxed);
                        }
                        // No one listening is fine: followers read their backlog themselves.
                        let _ = self.bus.send(page.into());
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event hub: read failed; retrying on the next wake");
                        break;
                    }
                }
            }
        }
    }

    /// The events `caller` may see, after `follow.after`, then as they commit. Refused at once
    /// for a bad request; the stream itself ends with UNAVAILABLE on shutdown, on a storage
    /// failure, or when the caller falls [`BUFFER`] batches behind.
    pub fn follow(
        &self,
        caller: &Caller,
        follow: Follow,
    ) -> DomainResult<impl Stream<Item = DomainResult<FeedEvent>> + Send + 'static> {
        if follow.after < 0 {
            return Err(DomainError::invalid(
                "after_sequence",
                "must be 0 (from the start) or a sequence seen before",
            ));
        }
        let mut kinds = Vec::with_capacity(follow.kinds.len());
        for (i, k) in follow.kinds.iter().enumerate() {
            kinds.push(
                k.parse::<EventKind>()
                    .map_err(|e| DomainError::invalid(format!("kinds[{i}]"), e))?,
            );
        }
        let directory = self.directory.snapshot();
        let scope = Scope::of_follower(caller, &directory)?;
        let region = if follow.region_code.is_empty() {
            None
        } else {
            let r = directory.region(&follow.region_code).ok_or_else(|| {
                DomainError::invalid(
                    "region_code",
                    format!("unknown region {:?}", follow.region_code),
                )
            })?;
            Some((r.tier, r.code.clone()))
        };
        let follower = Follower {
            db: self.db.clone(),
            reads: self.reads.clone(),
            rx: self.bus.subscribe(),
            stop: self.stop.clone(),
            scope,
            kinds,
            region,
            cursor: follow.after,
            sent: follow.after,
            live: false,
            took_live: false,
            pending: VecDeque::new(),
            done: false,
            failures: 0,
        };
        Ok(futures_util::stream::unfold(follower, |mut f| async move {
            let item = f.next().await?;
            Some((item, f))
        }))
    }
}

/// One stream's state: its filters, how far it has got, and what it has to send.
struct Follower {
    db: DatabaseConnection,
    reads: Arc<AtomicU64>,
    rx: broadcast::Receiver<Batch>,
    stop: watch::Receiver<bool>,
    scope: Scope,
    kinds: Vec<EventKind>,
    region: Option<(Tier, String)>,
    /// The last sequence passed (sent or filtered out).
    cursor: i64,
    /// The last sequence sent: where the client resumes.
    sent: i64,
    /// Caught up with the database: now taking the broadcast.
    live: bool,
    /// Has taken at least one batch from the broadcast: from then on, lagging behind it means
    /// reading too slowly (before, it only means the backlog took a while).
    took_live: bool,
    pending: VecDeque<FeedEvent>,
    done: bool,
    /// Backlog reads failed in a row because the database was away.
    failures: usize,
}

impl Follower {
    fn wants(&self, e: &FeedEvent) -> bool {
        let place = e.place();
        self.scope.sees(&place)
            && (self.kinds.is_empty() || self.kinds.contains(&e.event.event.kind))
            && self.region.as_ref().is_none_or(|(tier, code)| {
                let i = Tier::ALL.iter().position(|t| t == tier).unwrap_or(0);
                e.chain[i].as_deref() == Some(code.as_str())
            })
    }

    /// Takes what is newer than the cursor and wanted.
    fn take(&mut self, events: impl IntoIterator<Item = FeedEvent>) {
        for e in events {
            if e.event.seq <= self.cursor {
                continue;
            }
            self.cursor = e.event.seq;
            if self.wants(&e) {
                self.pending.push_back(e);
            }
        }
    }

    fn end(&mut self, why: &'static str) -> Option<DomainResult<FeedEvent>> {
        self.done = true;
        metrics::counter!("gridcase_event_streams_ended_total", "reason" => why).increment(1);
        Some(Err(DomainError::Interrupted(format!(
            "{why}; resume after the last sequence received ({})",
            self.sent
        ))))
    }

    async fn next(&mut self) -> Option<DomainResult<FeedEvent>> {
        loop {
            if self.done {
                return None;
            }
            if *self.stop.borrow() {
                return self.end("the server is shutting down");
            }
            if let Some(e) = self.pending.pop_front() {
                self.sent = e.event.seq;
                return Some(Ok(e));
            }
            if !self.live {
                self.reads.fetch_add(1, Ordering::Relaxed);
                match storage::cases::feed_after(&self.db, self.cursor, PAGE).await {
                    Ok(page) if page.is_empty() => {
                        self.failures = 0;
                        self.live = true;
                    }
                    Ok(page) => {
                        self.failures = 0;
                        self.take(page);
                    }
                    // The database is away: the stream pauses, and reads again once it is
                    // back (the client need not resume elsewhere, where it would be away too).
                    Err(e) if e.is_unavailable() => {
                        tracing::debug!(error = %e, "event stream: backlog read failed; waiting");
                        let pause = RETRY_BACKLOG[self.failures.min(RETRY_BACKLOG.len() - 1)];
                        self.failures += 1;
                        tokio::select! {
                            biased;
                            () = stopped(&mut self.stop) => {}
                            () = tokio::time::sleep(pause) => {}
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream: backlog read failed");
                        return self.end("the event stream was interrupted");
                    }
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                () = stopped(&mut self.stop) => continue,
                batch = self.rx.recv() => batch,
            };
            match received {
                Ok(batch) => {
                    self.took_live = true;
                    self.take(batch.iter().cloned());
                }
                Err(broadcast::error::RecvError::Lagged(_)) if self.took_live => {
                    return self.end("this stream fell too far behind");
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Still catching up: read the rest from the database, then listen again.
                    self.rx = self.rx.resubscribe();
                    self.live = false;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return self.end("the event feed stopped");
                }
            }
        }
    }
}

/// Resolves once the server is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The sender is gone: the server has stopped.
    }
}

/// PostgreSQL: LISTEN on the events channel and wake the hub for every notification, and after
/// every reconnection (notifications sent meanwhile are lost; the hub's read covers them).
async fn listen_forever(
    options: sea_orm::sqlx::postgres::PgConnectOptions,
    wake: Wake,
    mut stop: watch::Receiver<bool>,
) {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    loop {
        // A private pool of one: the listener holds its connection for good.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.ignore_pool_close_event(true);
            l.listen(storage::cases::EVENTS_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        let connected = tokio::select! {
            () = stopped(&mut stop) => return,
            l = listener => l,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "event listener cannot connect; trying again in 1 s");
                tokio::select! {
                    () = stopped(&mut stop) => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Listening now: whatever committed before is read.
        wake.events_committed();
        loop {
            let heard = tokio::select! {
                () = stopped(&mut stop) => return,
                n = listener.try_recv() => n,
            };
            match heard {
                Ok(_) => wake.events_committed(),
                Err(e) => {
                    tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}
