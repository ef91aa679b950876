//! The Redis client every shared stage uses: a bounded pool of blocking connections with
//! timeouts, a circuit breaker in front, and one background subscriber thread for pub/sub.
//!
//! Blocking connections, not an async runtime: each call is one request/response on a pooled
//! socket, made by the thread serving the HTTP request (with the GIL released by the binding),
//! which is what a WSGI worker has to offer anyway. Pool size bounds idle sockets; a burst of
//! concurrent requests opens more and the extras are closed when returned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use redis::ConnectionLike;

use super::breaker::{Admission, Breaker, State, Transition};
use super::error::{StoreError, is_transport};
use super::settings::{RedisSettings, Target};
use crate::clock::SharedClock;

enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Self::Single(c) => c,
            Self::Cluster(c) => &mut **c,
        }
    }
}

enum Endpoint {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// Something worth logging, handed to the host's listener (the Python binding logs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    BreakerOpened { url: String, reason: String },
    BreakerClosed { url: String },
    SubscriberDown { url: String, reason: String },
    SubscriberUp { url: String },
}

pub type Listener = Arc<dyn Fn(&Event) + Send + Sync>;
/// Called with each message's payload on a subscribed channel.
pub type Handler = Arc<dyn Fn(&[u8]) + Send + Sync>;
/// Called each time the subscriber (re)connects, after it has subscribed: a consumer that keeps
/// a local copy reloads it here, since messages sent while it was away are lost.
pub type OnConnect = Arc<dyn Fn(&RedisClient) + Send + Sync>;

/// Counters for `stats()`.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    connects: AtomicU64,
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientStats {
    pub calls: u64,
    pub errors: u64,
    /// Calls refused by the open circuit breaker without touching the network.
    pub rejected: u64,
    pub connects: u64,
    pub breaker: State,
}

#[derive(Default)]
struct Subscriptions {
    channels: HashMap<String, Vec<Handler>>,
    on_connect: Vec<OnConnect>,
}

pub struct RedisClient {
    endpoint: Endpoint,
    settings: RedisSettings,
    idle: Mutex<Vec<Conn>>,
    breaker: Breaker,
    counters: Counters,
    listener: RwLock<Option<Listener>>,
    subs: Arc<RwLock<Subscriptions>>,
    subscriber_started: AtomicBool,
    /// The subscriber is connected, subscribed, has run the on-connect hooks and its last
    /// liveness PING was answered.
    subscriber_up: AtomicBool,
    /// The subscriber's current connection: 0 while it has none, else a number that grows with
    /// every (re)connect, so a consumer can tell whether its local copy was loaded on this one.
    subscriber_conn: AtomicU64,
    subscriber_connects: AtomicU64,
    stop: Arc<AtomicBool>,
    /// The process the pooled connections belong to: after a fork (gunicorn `--preload`) the
    /// child must not talk on its parent's sockets, or replies would cross between processes.
    pool_pid: AtomicU32,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("url", &self.settings.display)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl RedisClient {
    /// Builds the client; connects lazily (a Redis that is down at start-up is an outage like
    /// any other, not a start-up failure).
    pub fn new(settings: RedisSettings, clock: SharedClock) -> Result<Self, String> {
        let endpoint = match &settings.target {
            Target::Single(url) => {
                Endpoint::Single(open_single(&settings, url).map_err(|e| e.to_string())?)
            }
            Target::Cluster(nodes) => {
                let mut b =
                    redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                        .connection_timeout(settings.connect_timeout)
                        .response_timeout(settings.timeout)
                        // The breaker handles outages; retrying inside a request only adds latency.
                        .retries(1);
                if let Some(tls) = &settings.tls {
                    b = b.certs(tls.certificates());
                }
                Endpoint::Cluster(b.build().map_err(|e| e.to_string())?)
            }
        };
        let nanos = u64::try_from(settings.breaker_cooldown.as_nanos()).unwrap_or(u64::MAX);
        Ok(Self {
            breaker: Breaker::new(settings.breaker_failures, nanos, clock),
            endpoint,
            settings,
            idle: Mutex::new(Vec::new()),
            counters: Counters::default(),
            listener: RwLock::new(None),
            subs: Arc::new(RwLock::new(Subscriptions::default())),
            subscriber_started: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            subscriber_conn: AtomicU64::new(0),
            subscriber_connects: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            pool_pid: AtomicU32::new(std::process::id()),
        })
    }

    #[must_use]
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// `prefix + rest`.
    #[must_use]
    pub fn key(&self, rest: &str) -> String {
        let mut k = String::with_capacity(self.settings.prefix.len() + rest.len());
        k.push_str(&self.settings.prefix);
        k.push_str(rest);
        k
    }

    pub fn set_listener(&self, listener: Option<Listener>) {
        *self
            .listener
            .write()
            .unwrap_or_else(PoisonError::into_inner) = listener;
    }

    fn emit(&self, event: &Event) {
        let l = self
            .listener
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(l) = l {
            l(event);
        }
    }

    #[must_use]
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            calls: self.counters.calls.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            connects: self.counters.connects.load(Ordering::Relaxed),
            breaker: self.breaker.state(),
        }
    }

    fn connect(&self) -> redis::RedisResult<Conn> {
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        match &self.endpoint {
            Endpoint::Single(c) => {
                let con = c.get_connection_with_timeout(self.settings.connect_timeout)?;
                con.set_read_timeout(Some(self.settings.timeout))?;
                con.set_write_timeout(Some(self.settings.timeout))?;
                Ok(Conn::Single(con))
            }
            Endpoint::Cluster(c) => Ok(Conn::Cluster(Box::new(c.get_connection()?))),
        }
    }

    /// An idle connection of this process, if any.
    fn pooled(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        if self.pool_pid.swap(pid, Ordering::AcqRel) != pid {
            // Forked: these sockets are the parent's. Closing them here could disturb the
            // parent's sessions (TLS close_notify), so they are left alone, once per fork.
            for conn in idle.drain(..) {
                std::mem::forget(conn);
            }
        }
        idle.pop()
    }

    /// Call in a forked child: drops the parent's pooled connections and starts this process's
    /// own subscriber thread (threads do not survive a fork), whose on-connect hooks reload
    /// every local copy.
    pub fn after_fork(self: &Arc<Self>) {
        drop(self.pooled());
        // The parent's subscriber is not this process's: until the child's own has connected
        // (and its hooks have run), nothing may act as if no message had been missed.
        self.subscriber_up.store(false, Ordering::Release);
        self.subscriber_conn.store(0, Ordering::Release);
        self.subscriber_started.store(false, Ordering::Release);
        let has_channels = !self
            .subs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .channels
            .is_empty();
        if has_channels {
            self.start_subscriber();
        }
    }

    fn put_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.pool_size {
            idle.push(conn);
        }
    }

    fn record(&self, transition: Option<Transition>, reason: Option<&StoreError>) {
        match transition {
            Some(Transition::Opened) => self.emit(&Event::BreakerOpened {
                url: self.settings.display.clone(),
                reason: reason.map(ToString::to_string).unwrap_or_default(),
            }),
            Some(Transition::Closed) => self.emit(&Event::BreakerClosed {
                url: self.settings.display.clone(),
            }),
            None => {}
        }
    }

    /// Runs `f` on a pooled connection. A transport error drops the connection and counts
    /// against the breaker; a reused connection that turns out to be dead (the server
    /// restarted since it was pooled) is replaced and the call made once more.
    pub fn run<T>(
        &self,
        mut f: impl FnMut(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        if self.breaker.admit() == Admission::Reject {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::CircuitOpen);
        }
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let pooled = self.pooled();
        let reused = pooled.is_some();
        let mut conn = match pooled.map_or_else(|| self.connect(), Ok) {
            Ok(c) => c,
            Err(e) => return Err(self.fail(&e)),
        };
        let mut result = f(conn.as_dyn());
        if let Err(e) = &result {
            if reused && e.is_connection_dropped() && !e.is_timeout() {
                conn = match self.connect() {
                    Ok(c) => c,
                    Err(e) => return Err(self.fail(&e)),
                };
                result = f(conn.as_dyn());
            }
        }
        match result {
            Ok(v) => {
                self.put_back(conn);
                self.record(self.breaker.success(), None);
                Ok(v)
            }
            Err(e) => {
                if !is_transport(&e) {
                    self.put_back(conn);
                }
                Err(self.fail(&e))
            }
        }
    }

    fn fail(&self, e: &redis::RedisError) -> StoreError {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let err = StoreError::from_redis(e);
        self.record(self.breaker.failure(), Some(&err));
        err
    }

    /// One PING round trip on a pooled connection (health checks, and the benchmark's baseline).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| redis::cmd("PING").query::<String>(c))
            .and_then(|pong| {
                if pong == "PONG" {
                    Ok(())
                } else {
                    Err(StoreError::Protocol(format!("PING answered {pong:?}")))
                }
            })
    }

    /// Whether the subscriber thread is connected and live: subscribed, on-connect hooks done,
    /// and answering the PING it sends every [`SUB_PING`]. False before the first connection and
    /// from the moment a read, a PING or a reconnect fails; a consumer that must not act on a
    /// copy that may have missed messages checks it (one atomic load).
    #[must_use]
    pub fn subscriber_connected(&self) -> bool {
        self.subscriber_up.load(Ordering::Acquire)
    }

    /// The subscriber's connection number while it is connected and subscribed (set before the
    /// `on_connect` hooks run; each reconnect gets a larger one), `None` while it is down.
    #[must_use]
    pub fn subscriber_connection(&self) -> Option<u64> {
        match self.subscriber_conn.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// Publishes `payload` on `prefix + channel`; returns how many subscribers got it.
    pub fn publish(&self, channel: &str, payload: &[u8]) -> Result<u64, StoreError> {
        let channel = self.key(channel);
        self.run(|c| redis::cmd("PUBLISH").arg(&channel).arg(payload).query(c))
    }

    /// Calls `handler` with every message published on `prefix + channel`, from a background
    /// thread (started on the first subscription). `on_connect` runs after every (re)connect.
    pub fn subscribe(
        self: &Arc<Self>,
        channel: &str,
        handler: Handler,
        on_connect: Option<OnConnect>,
    ) {
        {
            let mut subs = self.subs.write().unwrap_or_else(PoisonError::into_inner);
            subs.channels
                .entry(self.key(channel))
                .or_default()
                .push(handler);
            if let Some(c) = on_connect {
                subs.on_connect.push(c);
            }
        }
        self.start_subscriber();
    }

    /// Starts the subscriber thread unless this process already has one.
    fn start_subscriber(self: &Arc<Self>) {
        if self
            .subscriber_started
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let weak = Arc::downgrade(self);
            let stop = self.stop.clone();
            let subs = self.subs.clone();
            let spawned = std::thread::Builder::new()
                .name("ferrogate-redis-sub".into())
                .spawn(move || subscriber_loop(&weak, &stop, &subs));
            if spawned.is_err() {
                self.subscriber_started.store(false, Ordering::Release);
            }
        }
    }
}

/// A client for one server, with the configured TLS material.
///
/// Without redis-rs's `CLIENT SETINFO` handshake: its two replies are each waited for with the
/// connect timeout, and a failed one is not fatal, so a server that accepts connections but does
/// not answer (paused, overloaded) cost every new connection twice the timeout. The server learns
/// nothing useful from it that `CLIENT SETNAME` could not say.
fn open_single(settings: &RedisSettings, url: &str) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let handshake = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(handshake);
    match &settings.tls {
        Some(tls) => redis::Client::build_with_tls(info, tls.certificates()),
        None => redis::Client::open(info),
    }
}

/// How long the subscriber blocks on a read before it checks whether it should stop.
const SUB_POLL: Duration = Duration::from_millis(200);
/// How often the subscriber PINGs: a server that stopped answering (paused, partitioned away
/// without a reset) is noticed within this plus [`SUB_POLL`], not at the next TCP timeout.
pub const SUB_PING: Duration = Duration::from_secs(1);

fn subscriber_loop(
    client: &std::sync::Weak<RedisClient>,
    stop: &AtomicBool,
    subs: &RwLock<Subscriptions>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut was_down = false;
    while !stop.load(Ordering::Acquire) {
        let Some(c) = client.upgrade() else { return };
        let result = subscribe_once(&c, stop, subs, &mut was_down);
        c.subscriber_up.store(false, Ordering::Release);
        c.subscriber_conn.store(0, Ordering::Release);
        if let Err(reason) = result {
            if !was_down {
                c.emit(&Event::SubscriberDown {
                    url: c.settings.display.clone(),
                    reason,
                });
                was_down = true;
            }
        } else {
            backoff = Duration::from_millis(50);
        }
        drop(c);
        let mut slept = Duration::ZERO;
        while slept < backoff && !stop.load(Ordering::Acquire) {
            std::thread::sleep(SUB_POLL.min(backoff));
            slept += SUB_POLL.min(backoff);
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's life: subscribe, run the on-connect hooks, dispatch until an error.
fn subscribe_once(
    c: &Arc<RedisClient>,
    stop: &AtomicBool,
    subs: &RwLock<Subscriptions>,
    was_down: &mut bool,
) -> Result<(), String> {
    // Pub/sub needs a plain connection; on a cluster, PUBLISH reaches every node's subscribers.
    let url = match &c.settings.target {
        Target::Single(u) => u.clone(),
        Target::Cluster(nodes) => nodes.first().cloned().unwrap_or_default(),
    };
    let client = open_single(&c.settings, &url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(c.settings.connect_timeout)
        .map_err(|e| e.to_string())?;
    let mut ps = con.as_pubsub();
    ps.set_read_timeout(Some(SUB_POLL))
        .map_err(|e| e.to_string())?;
    let (channels, hooks): (Vec<String>, Vec<OnConnect>) = {
        let s = subs.read().unwrap_or_else(PoisonError::into_inner);
        (s.channels.keys().cloned().collect(), s.on_connect.clone())
    };
    for ch in &channels {
        ps.subscribe(ch).map_err(|e| e.to_string())?;
    }
    let number = c.subscriber_connects.fetch_add(1, Ordering::Relaxed) + 1;
    c.subscriber_conn.store(number, Ordering::Release);
    for h in &hooks {
        h(c);
    }
    c.subscriber_up.store(true, Ordering::Release);
    let mut last_ping = std::time::Instant::now();
    if *was_down {
        c.emit(&Event::SubscriberUp {
            url: c.settings.display.clone(),
        });
        *was_down = false;
    }
    while !stop.load(Ordering::Acquire) {
        // Only this thread still holds the client: its owner is gone, so is the subscription.
        if Arc::strong_count(c) <= 1 {
            return Ok(());
        }
        // A channel subscribed after this connection was made: subscribing again from scratch
        // is simplest, and runs the reload hooks for the newcomer.
        if subs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .channels
            .len()
            != channels.len()
        {
            return Ok(());
        }
        if last_ping.elapsed() >= SUB_PING {
            // Answered within SUB_POLL (the read timeout) or the connection is given up.
            ps.ping::<redis::Value>()
                .map_err(|e| format!("no answer to PING: {e}"))?;
            last_ping = std::time::Instant::now();
        }
        match ps.get_message() {
            Ok(msg) => {
                let name = msg.get_channel_name().to_owned();
                let payload = msg.get_payload_bytes().to_vec();
                let handlers: Vec<Handler> = subs
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .channels
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                for h in handlers {
                    h(&payload);
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
