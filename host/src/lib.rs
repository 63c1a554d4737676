//! The Tidings host: HTTP and Socket.IO on one port, sessions, storage, and WebAssembly
//! plugins that hold each record type's controller logic.
//!
//! Entry points: [`Server::start`] (what `tidings serve` and the tests run) and [`app`] (the
//! router, for in-process tests). See ARCHITECTURE.md for the map of the modules.

pub mod authoring;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod fixtures;
pub mod http;
pub mod lifecycle;
pub mod notifications;
pub mod pages;
pub mod pipeline;
pub mod plugin;
pub mod realtime;
pub mod scaffold;
pub mod sessions;
pub mod state;
pub mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use socketioxide::SocketIo;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::lifecycle::PluginManager;
use crate::notifications::Notifier;
use crate::pipeline::Pipeline;
use crate::plugin::types::IndexKind;
use crate::plugin::{LoadedPlugin, Registry, Runtime};
use crate::realtime::RealtimeState;
use crate::sessions::throttle::LoginThrottle;
use crate::state::AppState;
use crate::tasks::{TaskRunner, TaskWaker};

/// Packets queued per socket before sends to it fail.
const SOCKET_BUFFER_PACKETS: usize = 1024;
/// Largest message a client may send over Socket.IO (either transport).
const SOCKET_MAX_INCOMING_BYTES: u64 = 64 * 1024;
/// Each WebSocket's read buffer, kept for the socket's life (tungstenite's default is 4 KiB).
/// Client messages are small (pongs, events with a few arguments); a longer frame still
/// arrives whole, since the buffer grows to the frame's length once its header is read.
const SOCKET_READ_BUFFER_BYTES: usize = 1024;

/// Collections the host serves itself; no plugin may claim them.
pub const RESERVED_COLLECTIONS: &[&str] = &["admin", "auth", "checklogin", "logout", "user"];

/// The plugins compiled into the binary by `build.rs`: `(file name, component bytes)`.
pub mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));
}

/// The whole application: HTTP routes, the Socket.IO layer, and the body limit.
pub fn app(state: AppState, socket_layer: socketioxide::layer::SocketIoLayer) -> Router {
    let body_limit = state.config.max_body_bytes;
    http::router(state)
        .layer(socket_layer)
        .layer(axum::middleware::map_request(realtime::detach_request_head))
        .layer(DefaultBodyLimit::max(body_limit))
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// The emitter and the plugin-directory watcher; they hold the engine and the sockets,
    /// so they end with the server.
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// Connect the database, create the bootstrap admin, load the plugins, and start
    /// accepting connections.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let config = Arc::new(config);
        let clock = Clock::default();
        let db = Db::connect(config.database_url.as_deref(), &config.data_dir).await.context("opening the database")?;
        if let Some((email, password)) = &config.bootstrap_admin
            && sessions::bootstrap_admin(&db, &clock, email, password).await.context("creating the bootstrap admin")?
        {
            tracing::info!(email, "created the bootstrap admin");
        }
        db::users::mirror_missing(&db).await.context("mirroring users into USER records")?;
        let runtime =
            Runtime::new(config.limits.clone(), db.dialect, db.elements.clone(), Some(config.data_dir.join("cache")))
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let plugins = Arc::new(Registry::default());

        // One throttle for both ways to sign in: the HTTP login and the Admin UI's handshake.
        let throttle = Arc::new(LoginThrottle::default());
        let realtime = RealtimeState {
            db: db.clone(),
            clock: clock.clone(),
            config: Arc::clone(&config),
            plugins: Arc::clone(&plugins),
            runtime: Arc::clone(&runtime),
            throttle: Arc::clone(&throttle),
            admin_events: Arc::default(),
        };
        let admin_events = Arc::clone(&realtime.admin_events);
        // A bounded buffer per socket: a client that stops reading cannot grow the server's
        // memory; replays wait for room (see notifications::emitter).
        // Incoming messages are capped too: a client event is small (arguments for a plugin).
        let (socket_layer, io) = SocketIo::builder()
            .max_buffer_size(SOCKET_BUFFER_PACKETS)
            .max_payload(SOCKET_MAX_INCOMING_BYTES)
            .ws_max_message_size(SOCKET_MAX_INCOMING_BYTES as usize)
            .ws_max_frame_size(SOCKET_MAX_INCOMING_BYTES as usize)
            .ws_read_buffer_size(SOCKET_READ_BUFFER_BYTES)
            .with_state(realtime)
            .build_layer();
        let (notifier, emitter) = Notifier::new(io.clone(), db.clone(), clock.clone(), config.retention)
            .await
            .context("starting the notification emitter")?;
        let admin_stats = realtime::register(&io, notifier.seater(), admin_events);
        let mut background = vec![emitter.start(), admin_stats];
        let bundled = if config.bundled_plugins { bundled::PLUGINS } else { &[] };
        let manager = PluginManager::new(
            db.clone(),
            clock.clone(),
            Arc::clone(&runtime),
            Arc::clone(&plugins),
            notifier.clone(),
            bundled,
        );
        manager.load_at_start(config.plugin_dir.as_deref()).await.context("loading the plugins")?;
        // Other nodes on the same PostgreSQL database: hear what they change.
        background.extend(cluster::start(db.clone(), notifier.clone(), manager.clone(), Arc::clone(&throttle)));
        if let Some(dir) = &config.plugin_dir {
            background.push(manager.watch(dir.clone()));
        }
        let tasks = TaskWaker::default();
        let (pipeline, committer) = Pipeline::start(db.clone(), Arc::clone(&runtime), notifier.clone(), tasks.clone());
        background.push(committer);
        background.push(
            TaskRunner {
                db: db.clone(),
                clock: clock.clone(),
                plugins: Arc::clone(&plugins),
                pipeline: pipeline.clone(),
                waker: tasks.clone(),
            }
            .start()
            .await,
        );
        let state = AppState::new(state::Shared {
            db,
            clock,
            config: Arc::clone(&config),
            plugins,
            runtime,
            notifier,
            manager,
            throttle,
            io: io.clone(),
            tasks,
            pipeline,
        });

        let listener = listen(config.listen).with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Notifications are small writes that must leave at once, not wait for the ACK of the
        // previous one (Nagle's algorithm), as Node's servers do by default.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(%err, "could not set TCP_NODELAY");
            }
        });
        let (shutdown, on_shutdown) = oneshot::channel::<()>();
        let router = app(state.clone(), socket_layer);
        let task = tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = on_shutdown.await;
                    // Close sockets so that graceful shutdown does not wait on them forever.
                    io.disconnect().await.ok();
                })
                .await
        });
        tracing::info!("listening on http://{addr}");
        Ok(Server { addr, state, shutdown: Some(shutdown), task, background })
    }

    /// The base URL, e.g. `http://127.0.0.1:3002`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting connections, finish in-flight requests, and return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        for task in &self.background {
            task.abort();
        }
        Ok(())
    }

    /// Wait until the server stops (after `stop` from elsewhere or an error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }

    /// A handle that stops the server when sent to.
    pub fn take_shutdown(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// Connections the kernel holds for `accept` (capped by `net.core.somaxconn`). The standard
/// library's and tokio's 128 overflows when a few hundred clients connect at once: the kernel
/// drops the excess and each client retries after a second. Node's servers use 511.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Load-time work for a plugin's storage: the indexes its queries need.
pub(crate) async fn prepare_storage(db: &Db, plugin: &LoadedPlugin) -> anyhow::Result<()> {
    let record_type = &plugin.descriptor.record_type;
    let mut element_fields = Vec::new();
    for index in &plugin.descriptor.indexes {
        match index.kind {
            IndexKind::Value => db::records::ensure_index(db, record_type, &index.field, &index.then_by)
                .await
                .with_context(|| format!("creating the index on {record_type}.{}", index.field))?,
            IndexKind::Elements => element_fields.push(index.field.clone()),
        }
    }
    db::records::ensure_element_indexes(db, record_type, &element_fields)
        .await
        .with_context(|| format!("building the element indexes of {record_type}"))?;
    Ok(())
}
