//! The engineer's commands: `login`, `logout`, `status`, `kubeconfig`, and `credential` (the
//! exec plugin kubectl runs). Flags and help text here; the work is in [`crate::login`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::login::client_cert;
use crate::login::exec_credential::ExecInfo;
use crate::login::kubeconfig::{self, Entry, ExecSpec, Outcome};
use crate::login::profile::{self, Profile, ProfileError};
use crate::login::refresh::{self, Deps};
use crate::login::session::{self, Prompt};
use crate::login::store::{Backend, SecretStore};

/// The profile used when --profile is not given.
pub const DEFAULT_PROFILE: &str = "default";

/// `--profile`, shared by every command here.
#[derive(Debug, clap::Args)]
pub struct ProfileArg {
    /// The profile: one relay and one identity (several can live side by side).
    #[arg(long, env = "HOOP_KUBE_PROFILE", default_value = DEFAULT_PROFILE)]
    pub profile: String,
}

/// `hoop-kube login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The relay, https://HOST[:PORT] (required the first time; kept in the profile).
    #[arg(long)]
    pub relay: Option<String>,
    /// SHA-256 fingerprint of the relay's CA, as printed by `hoop-kube relay pki init` (required
    /// the first time unless --relay-ca is given; kept in the profile).
    #[arg(long, value_name = "HEX", conflicts_with = "relay_ca")]
    pub relay_ca_sha256: Option<String>,
    /// The relay's CA certificate (PEM) instead of its fingerprint.
    #[arg(long, value_name = "FILE")]
    pub relay_ca: Option<PathBuf>,
    /// The OpenID issuer URL (required the first time; kept in the profile).
    #[arg(long)]
    pub issuer: Option<String>,
    /// The OAuth client id registered at the issuer (default: hoop-kube).
    #[arg(long)]
    pub client_id: Option<String>,
    /// An extra scope to ask for, e.g. groups (repeatable; openid offline_access email profile
    /// are always asked for).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Where tokens and the client key are kept: the OS keyring, or a 0600 file under
    /// $XDG_STATE_HOME/hoop-kube for machines without one (headless CI, containers).
    #[arg(long, value_name = "keyring|file")]
    pub token_store: Option<Backend>,
    /// Where this profile's local forwarder listens (loopback, fixed port; default 127.0.0.1:6643).
    #[arg(long, value_name = "IP:PORT")]
    pub forward_listen: Option<SocketAddr>,
    /// Do not draw the QR code (it is never drawn when stdout is not a terminal).
    #[arg(long)]
    pub no_qr: bool,
}

/// `hoop-kube logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Also delete the profile's settings (relay, issuer, pin).
    #[arg(long)]
    pub forget_profile: bool,
}

/// `hoop-kube status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// `hoop-kube credential`.
#[derive(Debug, clap::Args)]
pub struct CredentialArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Do not start the profile's forwarder when it is not running.
    #[arg(long)]
    pub no_forwarder: bool,
}

/// `hoop-kube kubeconfig`.
#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Name of the context (and of its cluster and user entries); default hoop-kube-PROFILE.
    #[arg(long)]
    pub context: Option<String>,
    /// The file to update; default: the first entry of $KUBECONFIG, else ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The context's default namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Leave current-context alone (by default the new context becomes the current one).
    #[arg(long)]
    pub no_switch: bool,
    /// Extra environment for the plugin, NAME=VALUE (repeatable), e.g. XDG_STATE_HOME for a
    /// setup kept apart from the user's own. HOOP_KUBE_CONFIG_DIR is passed on when it is set.
    #[arg(long = "exec-env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub exec_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("invalid variable name {k:?}"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn plain(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(e.to_string().trim_start_matches("hoop-kube: ").to_string())
}

fn profile_from_args(a: &LoginArgs) -> anyhow::Result<Profile> {
    let name = &a.profile.profile;
    let mut p = match Profile::load(name) {
        Ok(p) => p,
        Err(ProfileError::NotFound { .. }) => {
            let (Some(relay), Some(issuer)) = (&a.relay, &a.issuer) else {
                bail!("profile \"{name}\" is new: pass --relay URL, --relay-ca-sha256 HEX and --issuer URL (your platform team has them)");
            };
            let mut p = Profile::new(name, relay, issuer)?;
            p.forward_listen = free_forward_listen()?;
            p
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &a.relay {
        p.relay_url = r.clone();
    }
    if let Some(i) = &a.issuer {
        p.issuer = i.clone();
    }
    if let Some(c) = &a.client_id {
        p.client_id = c.clone();
    }
    if !a.scopes.is_empty() {
        p.scopes = a.scopes.clone();
    }
    if let Some(b) = a.token_store {
        p.token_store = b;
    }
    if let Some(l) = a.forward_listen {
        p.forward_listen = l;
    }
    if let Some(f) = &a.relay_ca_sha256 {
        p.relay_ca_sha256 = Some(crate::relay_trust::parse_fingerprint(f)?);
    }
    if let Some(path) = &a.relay_ca {
        let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read --relay-ca {}", path.display()))?;
        p.relay_ca_sha256 = Some(crate::relay_trust::fingerprint_of_pem(&pem)?);
    }
    if p.relay_ca_sha256.is_none() {
        bail!("profile \"{name}\" has no relay CA pin: pass --relay-ca-sha256 HEX (printed by `hoop-kube relay pki init`) or --relay-ca FILE");
    }
    Ok(p)
}

/// The first loopback port from 6643 up that no other profile's forwarder uses, so that profiles
/// created without --forward-listen can run side by side.
fn free_forward_listen() -> anyhow::Result<SocketAddr> {
    let taken: Vec<SocketAddr> = Profile::list()?.iter().filter_map(|n| Profile::load(n).ok()).map(|p| p.forward_listen).collect();
    let mut addr = profile::DEFAULT_FORWARD_LISTEN;
    while taken.contains(&addr) {
        addr.set_port(addr.port().checked_add(1).context("no free forward port above 6643; pass --forward-listen")?);
    }
    Ok(addr)
}

/// `hoop-kube login`.
pub async fn run_login(a: LoginArgs) -> anyhow::Result<()> {
    crate::agent::client::refuse_in_agent_session()?;
    let p = profile_from_args(&a)?;
    if p.token_store == Backend::Keyring {
        // Before the human approves anything: a keyring that cannot keep the tokens would lose them.
        SecretStore::probe(Backend::Keyring).await?;
    }
    let deps = Deps::for_profile(&p).map_err(plain)?;
    let path = p.save()?;
    let done = session::login(&p, &deps, Prompt { qr: !a.no_qr }).await?;
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %Z").to_string();
    eprintln!(
        "hoop-kube: logged in as {}{} (profile \"{}\", settings in {})",
        done.subject,
        if done.groups.is_empty() { String::new() } else { format!(", groups {}", done.groups.join(", ")) },
        p.name,
        path.display()
    );
    eprintln!("  token until {}{}", fmt(done.token_expiry), if done.has_refresh_token { ", refreshed automatically" } else { " (no refresh token: log in again then)" });
    eprintln!("  relay certificate until {}, renewed automatically", fmt(done.cert_expiry));
    eprintln!("Next: hoop-kube kubeconfig{}   (then: kubectl get pods)", if p.name == DEFAULT_PROFILE { String::new() } else { format!(" --profile {}", p.name) });
    Ok(())
}

/// `hoop-kube logout`.
pub async fn run_logout(a: LogoutArgs) -> anyhow::Result<()> {
    let name = &a.profile.profile;
    let p = Profile::load(name)?;
    let deps = Deps::for_profile(&p).map_err(plain)?;
    {
        let _lock = refresh::lock_profile(&deps.lock_dir, name, refresh::DEFAULT_LOCK_TIMEOUT).await.map_err(plain)?;
        deps.store.delete_all().await.with_context(|| format!("cannot delete the secrets of profile \"{name}\""))?;
        let cert = client_cert::cert_path(name)?;
        match std::fs::remove_file(&cert) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).with_context(|| format!("cannot delete {}", cert.display())),
            _ => {}
        }
    }
    if a.forget_profile {
        Profile::delete(name)?;
    }
    eprintln!(
        "hoop-kube: logged out of profile \"{name}\": tokens, client key and certificate deleted{}; its forwarder stops within {} s",
        if a.forget_profile { ", settings deleted" } else { "" },
        crate::forward::for_profile::WATCH_INTERVAL.as_secs()
    );
    Ok(())
}

/// `hoop-kube status`.
pub async fn run_status(a: StatusArgs) -> anyhow::Result<()> {
    let p = Profile::load(&a.profile.profile)?;
    let s = crate::login::status::gather(&p).await.map_err(anyhow::Error::msg)?;
    print!("{}", s.render());
    if !s.healthy() {
        bail!("profile \"{}\" cannot reach the cluster now; see above (hoop-kube login --profile {} fixes most of it)", p.name, p.name);
    }
    Ok(())
}

/// `hoop-kube credential`: stdout carries only the ExecCredential.
pub async fn run_credential(a: CredentialArgs) -> anyhow::Result<()> {
    crate::agent::client::refuse_in_agent_session()?;
    let p = Profile::load(&a.profile.profile)?;
    let info = ExecInfo::parse_os(std::env::var_os("KUBERNETES_EXEC_INFO").as_deref())?;
    let deps = Deps::for_profile(&p).map_err(plain)?;
    // kubectl passed a terminal: a login (on stderr) if one is needed, then the new token.
    let out = session::id_token(&p, &info, &deps).await.map_err(plain)?;
    if let Some(warning) = client_cert::renew_or_keep(&p, &deps.store, out.token(), &deps.lock_dir).await.map_err(plain)? {
        eprintln!("hoop-kube: warning: {warning}");
    }
    if !a.no_forwarder {
        let exe = std::env::current_exe().context("cannot locate the hoop-kube executable to start the forwarder")?;
        crate::forward::launch::ensure_running(&p, &exe, &deps.lock_dir).await?;
    }
    println!("{}", out.render(info.api_version));
    Ok(())
}

/// `hoop-kube kubeconfig`.
pub async fn run_kubeconfig(a: KubeconfigArgs) -> anyhow::Result<()> {
    let p = Profile::load(&a.profile.profile)?;
    let local = crate::forward::local_ca::load_or_create(&crate::forward::local_ca::default_dir().context("no home directory; set HOME or HOOP_KUBE_CONFIG_DIR")?)?;
    let exe = std::env::current_exe().context("cannot locate the hoop-kube executable")?;
    let mut env = Vec::new();
    if let Some(dir) = std::env::var_os(profile::CONFIG_DIR_ENV) {
        env.push((profile::CONFIG_DIR_ENV.to_string(), dir.to_string_lossy().into_owned()));
    }
    env.extend(a.exec_env.into_iter().filter(|(k, _)| k != profile::CONFIG_DIR_ENV));
    let name = a.context.unwrap_or_else(|| format!("hoop-kube-{}", p.name));
    let entry = Entry {
        name: name.clone(),
        server: format!("https://{}", p.forward_listen),
        ca_pem: local.ca_pem,
        exec: ExecSpec { command: exe.to_string_lossy().into_owned(), args: vec!["credential".into(), "--profile".into(), p.name.clone()], env },
        namespace: a.namespace,
    };
    let path = match a.kubeconfig {
        Some(p) => p,
        None => kubeconfig::default_path()?,
    };
    let outcome = kubeconfig::write(&path, &entry, !a.no_switch)?;
    let what = match outcome {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Unchanged => "already up to date:",
    };
    eprintln!("hoop-kube: {what} {} with context \"{name}\"{}", path.display(), if a.no_switch { "" } else { " (now the current context)" });
    Ok(())
}
