//! Where the relay's upstream credential comes from when it is not given directly: a kubeconfig
//! file and context, or the pod's service account (`in_cluster`).
//!
//! Only static credentials are accepted — the relay must hold its credential, not run a plugin to
//! get one — and nothing that weakens TLS. Every error names the file and the key inside it.

use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::config::{check_file, parse_yaml, read_capped, server_url, ConfigError, Material, ResolvedCredential, ResolvedKubeconfig, ResolvedUpstream};

/// The pod's service account: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, its
/// `token` and `ca.crt` under `sa_dir`. Errors name `upstream.in_cluster` in `file`.
pub(super) fn in_cluster(file: &str, env: &dyn Fn(&str) -> Option<String>, sa_dir: &Path) -> Result<ResolvedUpstream, ConfigError> {
    let key = "upstream.in_cluster";
    let var = |name: &str| {
        env(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            message: format!("{name} is not set; in_cluster only works inside a Kubernetes pod"),
        })
    };
    let (host, port) = (var("KUBERNETES_SERVICE_HOST")?, var("KUBERNETES_SERVICE_PORT")?);
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let server = server_url(file, key, &format!("https://{host}:{port}"))?;
    let (token, ca) = (sa_dir.join("token"), sa_dir.join("ca.crt"));
    check_file(file, key, &token)?;
    check_file(file, key, &ca)?;
    Ok(ResolvedUpstream { server, ca: Some(Material::File(ca)), tls_server_name: None, credential: ResolvedCredential::Token(Material::File(token)) })
}

// The parts of a kubeconfig the relay reads. Unknown keys are ignored here (kubeconfigs carry
// extensions and preferences); the dangerous ones are named so they can be refused.
#[derive(Deserialize)]
struct Kubeconfig {
    clusters: Option<Vec<KNamedCluster>>,
    users: Option<Vec<KNamedUser>>,
    contexts: Option<Vec<KNamedContext>>,
    #[serde(rename = "current-context")] current_context: Option<String>,
}
#[derive(Deserialize)]
struct KNamedCluster { name: String, cluster: KCluster }
#[derive(Deserialize)]
struct KNamedUser { name: String, user: KUser }
#[derive(Deserialize)]
struct KNamedContext { name: String, context: KContext }
#[derive(Deserialize)]
struct KContext { cluster: String, user: String }
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KCluster {
    server: Option<String>, certificate_authority: Option<String>, certificate_authority_data: Option<String>,
    #[serde(default)] insecure_skip_tls_verify: bool,
    tls_server_name: Option<String>, proxy_url: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KUser {
    token: Option<String>,
    #[serde(rename = "tokenFile")] token_file: Option<String>,
    client_certificate: Option<String>, client_certificate_data: Option<String>,
    client_key: Option<String>, client_key_data: Option<String>,
    exec: Option<IgnoredAny>, auth_provider: Option<IgnoredAny>, username: Option<IgnoredAny>, password: Option<IgnoredAny>,
    #[serde(rename = "as")] act_as: Option<IgnoredAny>,
    as_uid: Option<IgnoredAny>, as_groups: Option<IgnoredAny>, as_user_extra: Option<IgnoredAny>,
}

/// Resolve a kubeconfig (YAML or JSON) and a context (default its `current-context`) into server,
/// CA and a static credential. Relative paths inside are taken from the kubeconfig's directory.
/// Refused: exec plugins, auth providers, basic auth, `as*` impersonation, `proxy-url`,
/// `insecure-skip-tls-verify: true`, http servers, and ambiguous or missing credentials. Errors
/// name the kubeconfig file and the key inside it.
pub fn resolve_kubeconfig(path: &Path, context: Option<&str>) -> Result<ResolvedKubeconfig, ConfigError> {
    let file = path.display().to_string();
    let f = file.as_str();
    let kc: Kubeconfig = parse_yaml(&read_capped(path, f)?, f)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    let invalid = |key: String, message: String| ConfigError::Invalid { file: file.clone(), key, message };
    let name = match context {
        Some(c) => c.to_string(),
        None => kc.current_context.filter(|c| !c.is_empty()).ok_or_else(|| invalid("current-context".into(), "is not set; name a context with upstream.context".into()))?,
    };
    let (clusters, users, contexts) = (kc.clusters.unwrap_or_default(), kc.users.unwrap_or_default(), kc.contexts.unwrap_or_default());
    let find = |list: &str, names: Vec<&str>, want: &str, from: &str| -> Result<usize, ConfigError> {
        if let Some(j) = (0..names.len()).find(|&j| names[..j].contains(&names[j])) {
            return Err(invalid(format!("{list}[{j}].name"), format!("{:?} appears more than once", names[j])));
        }
        names.iter().position(|n| *n == want).ok_or_else(|| invalid(from.into(), format!("no {list} entry named {want:?} (found: {})", names.join(", "))))
    };
    let ci = find("contexts", contexts.iter().map(|c| c.name.as_str()).collect(), &name, "contexts")?;
    let ctx = &contexts[ci].context;
    let cli = find("clusters", clusters.iter().map(|c| c.name.as_str()).collect(), &ctx.cluster, &format!("contexts[{ci}].context.cluster"))?;
    let ui = find("users", users.iter().map(|u| u.name.as_str()).collect(), &ctx.user, &format!("contexts[{ci}].context.user"))?;
    let (c, u) = (&clusters[cli].cluster, &users[ui].user);
    let (ck, uk) = (format!("clusters[{cli}].cluster"), format!("users[{ui}].user"));

    let server = c.server.as_deref().ok_or_else(|| invalid(format!("{ck}.server"), "is required".into()))?;
    let server = server_url(f, &format!("{ck}.server"), server)?;
    if c.insecure_skip_tls_verify {
        return Err(invalid(format!("{ck}.insecure-skip-tls-verify"), "true is not allowed: the relay always verifies the API server's certificate; give certificate-authority(-data)".into()));
    }
    if c.proxy_url.is_some() {
        return Err(invalid(format!("{ck}.proxy-url"), "is not supported by the relay; remove it".into()));
    }
    let refused: [(bool, &str, &str); 5] = [
        (u.exec.is_some(), "exec", "exec plugins are not allowed: the relay's upstream credential must be static (token, tokenFile or client certificate)"),
        (u.auth_provider.is_some(), "auth-provider", "auth providers are not allowed: the relay's upstream credential must be static (token, tokenFile or client certificate)"),
        (u.username.is_some() || u.password.is_some(), "username", "basic authentication is not supported; use a token or a client certificate"),
        (u.act_as.is_some() || u.as_uid.is_some(), "as", "impersonation in the relay's own credential is not allowed: the relay sets Impersonate-* itself"),
        (u.as_groups.is_some() || u.as_user_extra.is_some(), "as-groups", "impersonation in the relay's own credential is not allowed: the relay sets Impersonate-* itself"),
    ];
    if let Some((_, k, m)) = refused.iter().find(|r| r.0) {
        return Err(invalid(format!("{uk}.{k}"), (*m).into()));
    }
    let material = |base: &str, data_key: &str, data: &Option<String>, path_key: &str, p: &Option<String>| -> Result<Option<Material>, ConfigError> {
        match (data, p) {
            (Some(_), Some(_)) => Err(invalid(format!("{base}.{data_key}"), format!("set only one of {data_key} and {path_key}"))),
            (Some(d), None) => {
                use base64::Engine as _;
                let clean: String = d.chars().filter(|ch| !ch.is_ascii_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD.decode(clean).map_err(|_| invalid(format!("{base}.{data_key}"), "is not valid base64".into()))?;
                if bytes.is_empty() {
                    return Err(invalid(format!("{base}.{data_key}"), "is empty".into()));
                }
                Ok(Some(Material::Inline(bytes)))
            }
            (None, Some(p)) if p.is_empty() => Err(invalid(format!("{base}.{path_key}"), "is empty; name a file".into())),
            (None, Some(p)) => {
                let abs = dir.join(p);
                check_file(f, &format!("{base}.{path_key}"), &abs)?;
                Ok(Some(Material::File(abs)))
            }
            (None, None) => Ok(None),
        }
    };
    let ca = material(&ck, "certificate-authority-data", &c.certificate_authority_data, "certificate-authority", &c.certificate_authority)?;
    let inline_token = match u.token.as_deref().map(str::trim) {
        Some("") => return Err(invalid(format!("{uk}.token"), "is empty".into())),
        t => t.map(|t| t.to_string()),
    };
    let token = match material(&uk, "token", &None, "tokenFile", &u.token_file)? {
        Some(_) if inline_token.is_some() => return Err(invalid(format!("{uk}.token"), "set only one of token and tokenFile".into())),
        Some(m) => Some(m),
        None => inline_token.map(|t| Material::Inline(t.into_bytes())),
    };
    let cert = material(&uk, "client-certificate-data", &u.client_certificate_data, "client-certificate", &u.client_certificate)?;
    let key = material(&uk, "client-key-data", &u.client_key_data, "client-key", &u.client_key)?;
    let credential = match (token, cert, key) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(invalid(uk, "has both a token and a client certificate; the relay uses exactly one credential".into()))
        }
        (Some(t), None, None) => ResolvedCredential::Token(t),
        (None, Some(cert), Some(key)) => ResolvedCredential::ClientCert { cert, key },
        (None, Some(_), None) => return Err(invalid(format!("{uk}.client-key"), "is required with client-certificate (or use client-key-data)".into())),
        (None, None, Some(_)) => return Err(invalid(format!("{uk}.client-certificate"), "is required with client-key (or use client-certificate-data)".into())),
        (None, None, None) => return Err(invalid(uk, "has no static credential; set token, tokenFile or client-certificate + client-key".into())),
    };
    Ok(ResolvedUpstream { server, ca, tls_server_name: c.tls_server_name.clone().filter(|s| !s.is_empty()), credential })
}
