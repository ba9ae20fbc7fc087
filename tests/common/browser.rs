//! A minimal browser for the test IdP's own pages (cookies with paths, 303s followed as GETs,
//! forms submitted with their hidden fields), so a device login is approved the way a human
//! approves it.

// ---------------------------------------------------------------------------------------------
// A minimal browser for the provider's pages: cookies (with paths), 303s followed as GETs, and
// forms submitted with their hidden fields.

pub struct Browser {
    http: reqwest::Client,
    /// (name, value, path)
    cookies: Vec<(String, String, String)>,
}

impl Browser {
    pub fn new() -> Self {
        Browser { http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(), cookies: Vec::new() }
    }

    /// Walk from the verification URL to "Sign-in Success": confirm the code, sign in as `sub`
    /// on the development login page, consent. Returns the pages seen.
    pub async fn approve(&mut self, verification_uri_complete: &str, sub: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut url = reqwest::Url::parse(verification_uri_complete).unwrap();
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..16 {
            let method = if form.is_some() { "POST" } else { "GET" };
            seen.push(format!("{method} {}", url.path()));
            let (status, location, body) = self.send(&url, form.take()).await;
            match status {
                301..=303 => {
                    // Followed as a GET, like a browser does after a POST.
                    url = url.join(&location.expect("a redirect has a Location")).unwrap();
                }
                200 if body.contains("Sign-in Success") => return seen,
                200 => {
                    let action = form_action(&body).unwrap_or_else(|| panic!("no form on {url}: {body}"));
                    let mut fields = hidden_inputs(&body);
                    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                    let (xsrf, prompt) = (field("xsrf"), field("prompt"));
                    if xsrf.is_some() {
                        fields.push(("confirm".into(), "yes".into())); // "Continue" on the code page
                    }
                    match prompt.as_deref() {
                        Some("login") => {
                            fields.push(("login".into(), sub.into()));
                            fields.push(("password".into(), "any".into()));
                        }
                        Some("consent") | None => {}
                        Some(other) => panic!("unexpected prompt {other} on {url}"),
                    }
                    url = url.join(&action).unwrap();
                    form = Some(fields);
                }
                _ => panic!("{method} {url}: HTTP {status}: {body}"),
            }
        }
        panic!("no \"Sign-in Success\" page after {seen:?}");
    }

    async fn send(&mut self, url: &reqwest::Url, form: Option<Vec<(String, String)>>) -> (u16, Option<String>, String) {
        let mut req = match &form {
            Some(fields) => {
                let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
                self.http.post(url.clone()).header("content-type", "application/x-www-form-urlencoded").body(body)
            }
            None => self.http.get(url.clone()),
        };
        let path = url.path();
        let cookie = self
            .cookies
            .iter()
            .filter(|(_, _, p)| path == p || path.starts_with(&format!("{}/", p.trim_end_matches('/'))))
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let resp = req.send().await.expect("IdP page");
        let status = resp.status().as_u16();
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let mut parts = sc.split(';');
            let (name, value) = parts.next().unwrap().trim().split_once('=').unwrap();
            let path = parts
                .filter_map(|a| a.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| "/".into());
            self.cookies.retain(|(n, _, p)| !(n == name && *p == path));
            self.cookies.push((name.to_string(), value.to_string(), path));
        }
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (status, location, resp.text().await.unwrap())
    }
}

/// `action` of the first `<form>`.
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    attr(&form[..form.find('>')?], "action")
}

/// (name, value) of every `<input type="hidden">`.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if attr(tag, "type")?.eq_ignore_ascii_case("hidden") {
                Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
            } else {
                None
            }
        })
        .collect()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
