//! `hoop-kube reviews list|show|approve|deny|wait`: decide held requests from the kubeconfig you
//! already use. The relay is reached through a kubeconfig context (its server is the local
//! forwarder, its user's token comes from `token`, `tokenFile` or the exec plugin); the work is
//! in [`crate::review::client`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::review::client::{self, Client};
use crate::review::store::{self, State};

/// `hoop-kube reviews`.
#[derive(Debug, clap::Args)]
pub struct ReviewsArgs {
    /// The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context whose relay and identity to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    #[command(subcommand)]
    pub action: ReviewsAction,
}

/// `hoop-kube reviews …` actions.
#[derive(Debug, clap::Subcommand)]
pub enum ReviewsAction {
    /// List the pending reviews you requested or may decide (--all: every state).
    List {
        /// Also approved, denied, spent and expired reviews.
        #[arg(long)]
        all: bool,
    },
    /// Show one review in detail.
    Show {
        /// The review id (r-…).
        id: String,
    },
    /// Approve a review: the held request (or its next identical retry) runs once.
    Approve {
        /// The review id (r-…).
        id: String,
        /// An optional note kept with the approval.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a review; the held request gets a 403 with your reason.
    ///
    /// With --stop-agent, on a request an AI agent made: also stop every active session of that
    /// agent for that engineer, at once (new requests refused, open watches, logs and exec cut).
    Deny {
        /// The review id (r-…).
        id: String,
        /// Why (required; the requester sees it).
        #[arg(long)]
        reason: String,
        /// Also stop the agent that made the request (its sessions for that engineer).
        #[arg(long)]
        stop_agent: bool,
    },
    /// Wait until a review is decided (progress on stderr); exit 0 when approved, 1 otherwise.
    Wait {
        /// The review id (r-…).
        id: String,
        /// Give up after this many seconds (exit 1).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

pub async fn run(a: ReviewsArgs) -> anyhow::Result<()> {
    let path = client::default_kubeconfig(a.kubeconfig.as_deref());
    let context = a.context.clone();
    let target = tokio::task::spawn_blocking(move || client::resolve(&path, context.as_deref())).await.context("the credential lookup stopped")??;
    let c = Client::new(target)?;
    match a.action {
        ReviewsAction::List { all } => {
            let items = c.list(all).await?;
            if items.is_empty() {
                eprintln!("no {}reviews for you (context {})", if all { "" } else { "pending " }, c.target().context);
            } else {
                print!("{}", client::table(&items, store::now()));
            }
        }
        ReviewsAction::Show { id } => print!("{}", client::details(&c.get(&id).await?)),
        ReviewsAction::Approve { id, reason } => {
            let r = c.approve(&id, reason.as_deref()).await?;
            println!("approved {}: {} (usable once until {})", r.id, r.summary, store::rfc3339(r.expires_at));
        }
        ReviewsAction::Deny { id, reason, stop_agent: false } => {
            let r = c.deny(&id, &reason).await?;
            println!("denied {}: {}", r.id, r.summary);
        }
        ReviewsAction::Deny { id, reason, stop_agent: true } => {
            let (r, stopped) = c.deny_and_stop_agent(&id, &reason).await?;
            println!("denied {}: {}", r.id, r.summary);
            let agent = r.agent.as_deref().unwrap_or("the agent");
            if stopped.is_empty() {
                println!("{agent} of {} had no active session to stop", r.username);
            }
            for s in stopped {
                println!("stopped agent session {} ({} for {})", s.id, s.agent, s.username);
            }
        }
        ReviewsAction::Wait { id, timeout } => {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
            let mut said = false;
            loop {
                let r = c.get(&id).await?;
                match r.state {
                    State::Pending => {
                        if !said {
                            eprintln!("waiting for a member of {} to decide {} ({})…", r.reviewers.join(", "), r.id, r.summary);
                            said = true;
                        }
                    }
                    State::Approved | State::Spent => {
                        println!("{} approved by {}", r.id, r.decided_by.as_deref().unwrap_or("?"));
                        return Ok(());
                    }
                    State::Denied => anyhow::bail!("{} was denied by {}: {}", r.id, r.decided_by.as_deref().unwrap_or("?"), r.reason.as_deref().unwrap_or("")),
                    State::Expired => anyhow::bail!("{} expired undecided", r.id),
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!("{id} is still pending after {timeout} s");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Ok(())
}
