//! Several servers on one PostgreSQL database are one cluster: each is a node that serves any
//! client. This room is what a node hears from the others; what they share is the database.
//!
//! - Delivery: the notification log stays the one ordered source. Its inserts `NOTIFY` the
//!   other nodes (`db::cluster::LOG_CHANNEL`, at commit), whose emitters then read the log
//!   after their position; the emitter's periodic read covers a lost listening connection.
//! - Control: a change that must take effect on sockets or plugins of every node sends a
//!   [`Command`] in its own transaction (so it is heard exactly when it commits). The node that
//!   made the change applies it directly; the others apply it when they hear it. Sign-in
//!   attempts are sent as they are answered, so that every node's login throttle counts them.
//! - On (re)connecting, a node reads the log and reloads the active plugin versions, so what it
//!   missed while it did not listen is caught up.
//! - Sessions a node keeps in memory (`db::sessions::Cache`) are forgotten as soon as it hears
//!   that one ended or changed, and are not kept at all while it does not listen.
//!
//! On SQLite a server is alone: nothing is sent and nobody listens.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::db::{self, Db};
use crate::lifecycle::PluginManager;
use crate::notifications::Notifier;
use crate::sessions::throttle::LoginThrottle;

/// How long a node waits before listening again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// What every node must do after a change made through one of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Command {
    /// The session ended (logout, or a login that rotated it): disconnect its sockets.
    DisconnectSession { session: String },
    /// The user's role changed: move their sockets into or out of the `admin` room.
    SetAdmin { user: String, admin: bool },
    /// This version of a plugin serves now (`change`: `installed`, `rolled-back`).
    ServePlugin { name: String, sha256: String, change: String },
    /// A sign-in attempt was answered: every node's login throttle counts it.
    SignIn { email: String, address: Option<String>, succeeded: bool },
}

/// A command as sent: who sent it, so that the sender does not apply it twice.
#[derive(Serialize, Deserialize)]
struct Message {
    node: String,
    #[serde(flatten)]
    command: Command,
}

impl Command {
    /// Send to the other nodes, heard when the transaction `conn` is in commits. Nothing on
    /// SQLite.
    pub async fn send(&self, db: &Db, conn: &mut AnyConnection) -> Result<(), db::Error> {
        if db.listen_url().is_none() {
            return Ok(());
        }
        let message = Message { node: db.node.to_string(), command: self.clone() };
        let payload = serde_json::to_string(&message).map_err(|e| db::Error::Corrupt(e.to_string()))?;
        db::cluster::send_control(conn, db.dialect, &payload).await
    }
}

impl Command {
    /// Send to the other nodes at once, outside any transaction, for what is advisory (the
    /// throttle's counts): a failure is logged, not returned.
    pub async fn broadcast(&self, db: &Db) {
        if db.listen_url().is_none() {
            return;
        }
        let sent = match db.pool.acquire().await {
            Ok(mut conn) => self.send(db, &mut conn).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = sent {
            tracing::warn!(%err, command = ?self, "could not tell the other nodes");
        }
    }
}

/// Listen to the other nodes until the server stops; `None` on SQLite.
pub fn start(
    db: Db,
    notifier: Notifier,
    manager: PluginManager,
    throttle: Arc<LoginThrottle>,
) -> Option<JoinHandle<()>> {
    let url = db.listen_url()?.to_owned();
    // Commands are applied in order on a task of their own: loading a plugin takes a while,
    // and the log's wake-ups must not wait for it.
    let (commands, mut applying) = mpsc::unbounded_channel::<Command>();
    let applier = {
        let notifier = notifier.clone();
        let manager = manager.clone();
        tokio::spawn(async move {
            while let Some(command) = applying.recv().await {
                apply(&notifier, &manager, &throttle, command).await;
            }
        })
    };
    Some(tokio::spawn(async move {
        let _applier = AbortOnDrop(applier);
        loop {
            let mut listener = match db::cluster::listen(&url).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(%err, "listening to the other nodes failed; retrying");
                    tokio::time::sleep(RECONNECT_AFTER).await;
                    continue;
                }
            };
            // Catch up on what was sent while nobody listened: sessions may have ended too.
            db.sessions.trust(true);
            notifier.committed_to_log();
            let resync = manager.clone();
            tokio::spawn(async move { resync.resync().await });
            loop {
                match listener.try_recv().await {
                    Ok(Some(heard)) if heard.channel() == db::cluster::LOG_CHANNEL => match heard.payload().parse() {
                        Ok(seq) => notifier.log_grew(seq),
                        Err(_) => notifier.committed_to_log(),
                    },
                    Ok(Some(heard)) => match serde_json::from_str::<Message>(heard.payload()) {
                        Ok(message) if *message.node == *db.node => {}
                        Ok(message) => {
                            // Sessions are read again from now on, before the command's turn.
                            if let Command::DisconnectSession { .. } | Command::SetAdmin { .. } = message.command {
                                db.sessions.forget_all();
                            }
                            drop(commands.send(message.command))
                        }
                        Err(err) => tracing::warn!(%err, payload = heard.payload(), "a control command does not parse"),
                    },
                    Ok(None) => {
                        tracing::warn!("lost the connection listening to the other nodes; reconnecting");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(%err, "listening to the other nodes failed; reconnecting");
                        break;
                    }
                }
            }
            // Until it hears them again, a session ended through another node may be missed.
            db.sessions.trust(false);
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    }))
}

/// Apply a command another node sent.
async fn apply(notifier: &Notifier, manager: &PluginManager, throttle: &LoginThrottle, command: Command) {
    tracing::debug!(?command, "applying a command from another node");
    match command {
        Command::DisconnectSession { session } => notifier.disconnect_session(&session).await,
        Command::SetAdmin { user, admin } => notifier.set_admin(&user, admin).await,
        Command::ServePlugin { name, sha256, change } => manager.follow(&name, &sha256, &change).await,
        Command::SignIn { email, address, succeeded } => {
            let address = address.and_then(|a| a.parse().ok());
            throttle.heard(&email, address, succeeded, std::time::Instant::now());
        }
    }
}

/// Aborts a task when dropped: the applier ends with the listener.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
