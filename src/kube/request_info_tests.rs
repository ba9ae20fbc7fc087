use super::*;
use RequestInfoError as E;

/// Parse a request target `path[?query]`.
fn p(method: &str, target: &str) -> Result<RequestInfo> {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    match target.split_once('?') {
        Some((path, q)) => parse(&m, path, Some(q)),
        None => parse(&m, target, None),
    }
}

fn ok(method: &str, target: &str) -> RequestInfo {
    p(method, target).unwrap_or_else(|e| panic!("{method} {target}: {e:?}"))
}

/// (verb, resource, subresource, name, namespace)
fn attrs(i: &RequestInfo) -> (&str, &str, &str, &str, &str) {
    (&i.verb, &i.resource, &i.subresource, &i.name, &i.namespace)
}

fn check(method: &str, target: &str, want: (&str, &str, &str, &str, &str)) -> RequestInfo {
    let i = ok(method, target);
    assert!(i.is_resource_request, "{method} {target}");
    assert_eq!(attrs(&i), want, "{method} {target}");
    i
}

fn err(method: &str, target: &str) -> RequestInfoError {
    match p(method, target) {
        Ok(i) => panic!("{method} {target} accepted: {i:?}"),
        Err(e) => e,
    }
}

// ---- k8s-wire.md §4 table -------------------------------------------------------------------

#[test]
fn wire_table() {
    check("GET", "/api/v1/pods", ("list", "pods", "", "", ""));
    let i = check(
        "GET",
        "/api/v1/watch/namespaces/d/secrets/s",
        ("watch", "secrets", "", "s", "d"),
    );
    assert_eq!(i.parts, ["secrets", "s"]);
    check(
        "GET",
        "/api/v1/namespaces/d/pods?watch",
        ("watch", "pods", "", "", "d"),
    );
    check(
        "DELETE",
        "/api/v1/namespaces/d/secrets",
        ("deletecollection", "secrets", "", "", "d"),
    );
    check(
        "GET",
        "/api/v1/namespaces/d/pods/p/exec?command=ls&stdout=true",
        ("get", "pods", "exec", "p", "d"),
    );
    check(
        "POST",
        "/api/v1/namespaces/d/pods/p/exec",
        ("create", "pods", "exec", "p", "d"),
    );
    let i = check(
        "GET",
        "/api/v1/namespaces/d/services/https:s:443/proxy/x",
        ("get", "services", "proxy", "https:s:443", "d"),
    );
    assert_eq!(i.parts, ["services", "https:s:443", "proxy", "x"]);
    assert!(i.is_exec_class());
    let i = check(
        "GET",
        "/api/v1/nodes/n1/proxy/pods",
        ("get", "nodes", "proxy", "n1", ""),
    );
    assert!(i.is_exec_class());
    let i = ok("GET", "/apis/apps/v1");
    assert!(!i.is_resource_request);
    assert_eq!(i.verb, "get");
    assert_eq!(i.api_prefix, "apis"); // apiserver sets APIPrefix before the 4-part check
    assert_eq!(i.api_group, "");
    assert!(i.parts.is_empty());
}

#[test]
fn method_table() {
    check(
        "HEAD",
        "/api/v1/namespaces/d/pods/p",
        ("get", "pods", "", "p", "d"),
    );
    check(
        "HEAD",
        "/api/v1/namespaces/d/pods",
        ("list", "pods", "", "", "d"),
    );
    check(
        "PUT",
        "/api/v1/namespaces/d/pods/p",
        ("update", "pods", "", "p", "d"),
    );
    check(
        "PATCH",
        "/api/v1/namespaces/d/pods/p",
        ("patch", "pods", "", "p", "d"),
    );
    check(
        "DELETE",
        "/api/v1/namespaces/d/pods/p",
        ("delete", "pods", "", "p", "d"),
    );
    check(
        "POST",
        "/api/v1/namespaces/d/pods",
        ("create", "pods", "", "", "d"),
    );
    check("OPTIONS", "/api/v1/pods", ("", "pods", "", "", ""));
    check(
        "CONNECT",
        "/api/v1/namespaces/d/pods/p/exec",
        ("", "pods", "exec", "p", "d"),
    );
    // Go compares methods case-sensitively: "get" is an unknown method.
    check("get", "/api/v1/pods", ("", "pods", "", "", ""));
    // Non-resource: lower-cased method.
    assert_eq!(ok("PROPFIND", "/healthz").verb, "propfind");
    assert_eq!(ok("POST", "/version").verb, "post");
}

#[test]
fn watch_query_values() {
    for q in [
        "watch",
        "watch=",
        "watch=true",
        "watch=1",
        "watch=yes",
        "watch=TRUE",
        "watch=no",
        "watch=False&watch=x&watch=true",
    ] {
        let want = if q.starts_with("watch=False") {
            "list"
        } else {
            "watch"
        };
        assert_eq!(ok("GET", &format!("/api/v1/pods?{q}")).verb, want, "{q}");
    }
    for q in [
        "watch=false",
        "watch=0",
        "watch=FALSE",
        "watch=fAlSe",
        "watch=false&watch=true",
        "Watch=true",
        "watch%20=true",
    ] {
        assert_eq!(ok("GET", &format!("/api/v1/pods?{q}")).verb, "list", "{q}");
    }
    // Encoded key still counts; '+' decodes to space.
    assert_eq!(ok("GET", "/api/v1/pods?w%61tch=1").verb, "watch");
    assert_eq!(ok("GET", "/api/v1/pods?watch=+").verb, "watch");
    // A named GET stays get whatever the query says.
    assert_eq!(
        ok("GET", "/api/v1/namespaces/d/pods/p?watch=true").verb,
        "get"
    );
    // Non-ASCII booleans are where Go's two comparisons (EqualFold, ToLower) disagree.
    assert_eq!(
        err("GET", "/api/v1/pods?watch=fal%C5%BFe"),
        E::BadQuery("non-ASCII boolean parameter")
    );
    assert!(matches!(
        err("GET", "/api/v1/pods?sendInitialEvents=%C3%A9&watch=1"),
        E::BadQuery(_)
    ));
}

#[test]
fn namespaces_rebasing() {
    let i = check(
        "GET",
        "/api/v1/namespaces/ns1",
        ("get", "namespaces", "", "ns1", "ns1"),
    );
    assert_eq!(i.parts, ["namespaces", "ns1"]);
    check(
        "GET",
        "/api/v1/namespaces",
        ("list", "namespaces", "", "", ""),
    );
    check(
        "POST",
        "/api/v1/namespaces",
        ("create", "namespaces", "", "", ""),
    );
    let i = check(
        "PUT",
        "/api/v1/namespaces/ns1/finalize",
        ("update", "namespaces", "finalize", "ns1", "ns1"),
    );
    assert_eq!(i.parts, ["namespaces", "ns1", "finalize"]);
    check(
        "PATCH",
        "/api/v1/namespaces/ns1/status",
        ("patch", "namespaces", "status", "ns1", "ns1"),
    );
    check(
        "DELETE",
        "/api/v1/namespaces/ns1",
        ("delete", "namespaces", "", "ns1", "ns1"),
    );
    let i = check(
        "GET",
        "/api/v1/namespaces/ns1/configmaps",
        ("list", "configmaps", "", "", "ns1"),
    );
    assert_eq!(i.parts, ["configmaps"]);
    let i = check(
        "GET",
        "/api/v1/namespaces/d/pods/p1/proxy/a/b",
        ("get", "pods", "proxy", "p1", "d"),
    );
    assert_eq!(i.parts, ["pods", "p1", "proxy", "a", "b"]);
}

#[test]
fn path_verbs() {
    check("GET", "/api/v1/watch/pods", ("watch", "pods", "", "", ""));
    check(
        "GET",
        "/api/v1/watch/namespaces/d/pods",
        ("watch", "pods", "", "", "d"),
    );
    check(
        "GET",
        "/apis/apps/v1/watch/namespaces/d/deployments/x",
        ("watch", "deployments", "", "x", "d"),
    );
    // The proxy path verb takes no subresource.
    let i = check(
        "GET",
        "/api/v1/proxy/namespaces/d/pods/p/x/y",
        ("proxy", "pods", "", "p", "d"),
    );
    assert_eq!(i.parts, ["pods", "p", "x", "y"]);
    assert!(i.is_exec_class());
    check(
        "POST",
        "/api/v1/proxy/nodes/n1/pods",
        ("proxy", "nodes", "", "n1", ""),
    );
    // Path-form watch: no selector copy, no fieldSelector name.
    let i = ok(
        "GET",
        "/api/v1/watch/namespaces/d/secrets?fieldSelector=metadata.name%3Ds&labelSelector=a%3Db",
    );
    assert_eq!(attrs(&i), ("watch", "secrets", "", "", "d"));
    assert_eq!((i.field_selector, i.label_selector), (None, None));
    for t in [
        "/api/v1/watch",
        "/api/v1/watch/",
        "/api/v1/proxy",
        "/apis/apps/v1/watch",
    ] {
        assert_eq!(err("GET", t), E::PathVerbWithoutResource, "{t}");
    }
}

#[test]
fn non_resource() {
    for t in [
        "/",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps",
        "/version",
        "/healthz",
        "/openapi/v3",
        "/openapi/v3/api/v1?hash=ABC",
        "/openapi/v2",
        "/api/",
        "/logs/a/b/c",
        "/apix/v1/pods",
    ] {
        let i = ok("GET", t);
        assert!(!i.is_resource_request, "{t}");
        assert_eq!(i.verb, "get", "{t}");
        assert!(!i.is_mutating() && !i.is_exec_class());
        assert_eq!(
            (i.resource.as_str(), i.namespace.as_str(), i.name.as_str()),
            ("", "", "")
        );
    }
    assert_eq!(ok("GET", "/api/v1").api_prefix, "");
    assert_eq!(ok("GET", "/version?timeout=5s").path, "/version");
    // Case-sensitive: "API" is not a prefix.
    assert!(!ok("GET", "/API/v1/pods").is_resource_request);
}

#[test]
fn case_kept() {
    check(
        "GET",
        "/api/v1/namespaces/d/Secrets/x",
        ("get", "Secrets", "", "x", "d"),
    );
    check(
        "GET",
        "/apis/Apps/V1/deployments",
        ("list", "deployments", "", "", ""),
    );
}

#[test]
fn trailing_slash_ignored() {
    let a = ok("GET", "/api/v1/namespaces/d/pods/");
    let b = ok("GET", "/api/v1/namespaces/d/pods");
    assert_eq!(
        (a.path.as_str(), attrs(&a)),
        ("/api/v1/namespaces/d/pods/", attrs(&b))
    );
    assert_eq!(a.parts, b.parts);
}

// ---- kubectl's real URLs (k8s-wire.md §1–§3) ------------------------------------------------

#[test]
fn kubectl_urls() {
    assert!(!ok("GET", "/api?timeout=32s").is_resource_request);
    assert!(!ok("GET", "/apis?timeout=32s").is_resource_request);
    check(
        "GET",
        "/api/v1/namespaces/default/pods?limit=500",
        ("list", "pods", "", "", "default"),
    );
    check(
        "GET",
        "/api/v1/namespaces/default/secrets/x",
        ("get", "secrets", "", "x", "default"),
    );
    let i = check("POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
        ("create", "configmaps", "", "", "default"));
    assert!(i.is_mutating() && !i.is_exec_class());
    assert_eq!(i.field_selector, None);
    check("PATCH", "/api/v1/namespaces/default/configmaps/oldcm?fieldManager=kubectl&fieldValidation=Strict&force=false",
        ("patch", "configmaps", "", "oldcm", "default"));
    // delete --wait: list then watch with the name in a field selector.
    let i = check("GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dp1&limit=500&resourceVersion=0",
        ("list", "pods", "", "p1", "default"));
    assert_eq!(i.field_selector.as_deref(), Some("metadata.name=p1"));
    let i = check("GET", "/api/v1/namespaces/default/pods?allowWatchBookmarks=true&fieldSelector=metadata.name%3Dp1&resourceVersion=300&timeoutSeconds=412&watch=true",
        ("watch", "pods", "", "p1", "default"));
    assert!(!i.watch_list);
    check(
        "GET",
        "/api/v1/namespaces/default/pods/p1/log?container=c&follow=true",
        ("get", "pods", "log", "p1", "default"),
    );
    check(
        "GET",
        "/api/v1/namespaces/default/pods?resourceVersion=300&watch=true",
        ("watch", "pods", "", "", "default"),
    );
    let i = check(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        ("create", "selfsubjectaccessreviews", "", "", ""),
    );
    assert_eq!(
        (
            i.api_prefix.as_str(),
            i.api_group.as_str(),
            i.api_version.as_str()
        ),
        ("apis", "authorization.k8s.io", "v1")
    );
    let i = check(
        "GET",
        "/apis/apps/v1/namespaces/d/deployments/web",
        ("get", "deployments", "", "web", "d"),
    );
    assert_eq!(i.api_group, "apps");
    let i = check(
        "GET",
        "/api/v1/namespaces/d/pods",
        ("list", "pods", "", "", "d"),
    );
    assert_eq!(
        (
            i.api_prefix.as_str(),
            i.api_group.as_str(),
            i.api_version.as_str()
        ),
        ("api", "", "v1")
    );
    let i = check(
        "DELETE",
        "/apis/apps/v1/namespaces/d/deployments?labelSelector=app%3Dweb",
        ("deletecollection", "deployments", "", "", "d"),
    );
    assert_eq!(i.label_selector.as_deref(), Some("app=web"));
    assert!(i.is_mutating());
}

#[test]
fn watch_list_request() {
    let t = "/api/v1/namespaces/d/secrets?allowWatchBookmarks=true&fieldSelector=&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=325&watch=true";
    let i = check("GET", t, ("watch", "secrets", "", "", "d"));
    assert!(i.watch_list);
    assert_eq!(i.field_selector, None); // empty selector, as Go's empty string
    assert!(!ok("GET", "/api/v1/pods?watch=1&sendInitialEvents=false").watch_list);
    assert!(!ok("GET", "/api/v1/pods?watch=1&sendInitialEvents=0").watch_list);
    assert!(ok("GET", "/api/v1/pods?watch=1&sendInitialEvents").watch_list);
    assert!(ok("GET", "/api/v1/watch/pods?sendInitialEvents=true").watch_list);
    // Not a watch → not a watch-list (apiserver rejects sendInitialEvents on a list).
    assert!(!ok("GET", "/api/v1/pods?sendInitialEvents=true").watch_list);
}

#[test]
fn exec_attach_portforward() {
    let t = "/api/v1/namespaces/default/pods/p1/exec?command=ls&command=-l&command=%2F&container=c&stderr=true&stdout=true";
    let i = check("GET", t, ("get", "pods", "exec", "p1", "default"));
    assert!(i.is_exec_class() && !i.is_mutating());
    let q = t.split_once('?').map(|x| x.1);
    assert_eq!(query_all(q, "command"), ["ls", "-l", "/"]);
    assert_eq!(query_first(q, "container").as_deref(), Some("c"));
    let i = check("POST", "/api/v1/namespaces/default/pods/p1/exec?command=sh&container=c&stdin=true&stdout=true&tty=true",
        ("create", "pods", "exec", "p1", "default"));
    assert!(i.is_exec_class() && i.is_mutating());
    assert!(check(
        "GET",
        "/api/v1/namespaces/default/pods/p1/attach?container=c&stderr=true&stdout=true",
        ("get", "pods", "attach", "p1", "default")
    )
    .is_exec_class());
    assert!(check(
        "GET",
        "/api/v1/namespaces/default/pods/p1/portforward",
        ("get", "pods", "portforward", "p1", "default")
    )
    .is_exec_class());
    assert!(check(
        "POST",
        "/api/v1/namespaces/default/pods/p1/portforward",
        ("create", "pods", "portforward", "p1", "default")
    )
    .is_exec_class());
    assert!(ok("POST", "/api/v1/namespaces/d/serviceaccounts/sa/token").is_exec_class());
    assert!(ok("GET", "/api/v1/namespaces/d/pods/p/proxy").is_exec_class());
    assert!(!ok("GET", "/api/v1/namespaces/d/pods/p/log").is_exec_class());
    assert!(!ok("GET", "/api/v1/namespaces/d/pods/p").is_exec_class());
    assert!(!ok("GET", "/api/v1/namespaces/d/services/s").is_exec_class());
}

// ---- fieldSelector / labelSelector → name ---------------------------------------------------

fn sel_name(q: &str) -> String {
    ok("GET", &format!("/api/v1/namespaces/d/secrets?{q}")).name
}

#[test]
fn field_selector_name() {
    assert_eq!(sel_name("fieldSelector=metadata.name%3Dx"), "x");
    assert_eq!(sel_name("fieldSelector=metadata.name%3D%3Dx"), "x"); // ==
    assert_eq!(sel_name("fieldSelector=metadata.name!%3Dx"), ""); // != is not exact
    assert_eq!(
        sel_name("fieldSelector=metadata.namespace%3Dd,metadata.name%3Dx"),
        "x"
    );
    assert_eq!(
        sel_name("fieldSelector=metadata.name!%3Da,metadata.name%3Dx"),
        "x"
    );
    // Terms are sorted before parsing: the bytewise-smallest metadata.name term wins.
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Db,metadata.name%3Da"),
        "a"
    );
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Db,metadata.name%3D%3Dc"),
        "c"
    );
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Dx&fieldSelector=metadata.name%3Dy"),
        "x"
    );
    assert_eq!(sel_name("fieldSelector=metadata.name%3Da%5C,b"), "a,b"); // escaped comma
    assert_eq!(sel_name("fieldSelector=metadata.name%3D"), "");
    assert_eq!(sel_name("fieldSelector=metadata.name%3Dx,"), "x"); // empty term skipped
                                                                   // Selector parse errors: no name.
    for bad in [
        "metadata.name%3Dx%3Dy",
        "metadata.name%3D%3D%3Dx",
        "metadata.name%3Dx%5C",
        "metadata.name%3Dx,junk",
        "metadata.name%3Da%5Cb",
        "+metadata.name%3Dx",
        "metadata.Name%3Dx",
    ] {
        assert_eq!(sel_name(&format!("fieldSelector={bad}")), "", "{bad}");
    }
    // Not a valid path segment name: no name (apiserver skips it).
    for bad in [
        "metadata.name%3D.",
        "metadata.name%3D..",
        "metadata.name%3Da/b",
        "metadata.name%3Da%25b",
    ] {
        assert_eq!(sel_name(&format!("fieldSelector={bad}")), "", "{bad}");
    }
    // Any ListOptions decode failure: no name.
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Dx&timeoutSeconds=abc"),
        ""
    );
    assert_eq!(sel_name("fieldSelector=metadata.name%3Dx&limit=1.5"), "");
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Dx&limit=99999999999999999999"),
        ""
    );
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Dx&limit=%2B5&timeoutSeconds=-1"),
        "x"
    );
    assert_eq!(
        sel_name("fieldSelector=metadata.name%3Dx&limit=5&limit=x"),
        "x"
    ); // first value only
       // Label selectors we can vouch for keep the name; others conservatively drop it.
    for good in [
        "app%3Dweb",
        "app%3D%3Dweb",
        "app!%3Dweb",
        "app",
        "!app",
        "example.com/app%3Dv-1.2_3,tier",
        "app%3D",
    ] {
        assert_eq!(
            sel_name(&format!(
                "fieldSelector=metadata.name%3Dx&labelSelector={good}"
            )),
            "x",
            "{good}"
        );
    }
    for unsure in [
        "app+in+(a,b)",
        "app%3Dweb,",
        "-app%3Dx",
        "app%3D-x",
        "Example.com/app",
        "a/b/c",
        "app%3Da%3Db",
        "app+%3D+web",
        "in",
    ] {
        assert_eq!(
            sel_name(&format!(
                "fieldSelector=metadata.name%3Dx&labelSelector={unsure}"
            )),
            "",
            "{unsure}"
        );
    }
    // Only list/watch derive a name: deletecollection does not.
    let i = ok(
        "DELETE",
        "/api/v1/namespaces/d/secrets?fieldSelector=metadata.name%3Dx",
    );
    assert_eq!((i.verb.as_str(), i.name.as_str()), ("deletecollection", ""));
    assert_eq!(i.field_selector.as_deref(), Some("metadata.name=x"));
}

#[test]
fn selectors_copied_only_for_collection_verbs() {
    let q = "fieldSelector=a%3Db&fieldSelector=c%3Dd&labelSelector=x&labelSelector=y";
    let i = ok("GET", &format!("/api/v1/pods?{q}"));
    assert_eq!(
        (i.field_selector.as_deref(), i.label_selector.as_deref()),
        (Some("a=b"), Some("x"))
    );
    let i = ok("GET", &format!("/api/v1/pods?watch=1&{q}"));
    assert_eq!(
        (i.field_selector.as_deref(), i.label_selector.as_deref()),
        (Some("a=b"), Some("x"))
    );
    for (m, t) in [
        ("GET", "/api/v1/namespaces/d/pods/p"),
        ("POST", "/api/v1/namespaces/d/pods"),
        ("PATCH", "/api/v1/namespaces/d/pods/p"),
    ] {
        let i = ok(m, &format!("{t}?{q}"));
        assert_eq!(
            (i.field_selector, i.label_selector),
            (None, None),
            "{m} {t}"
        );
    }
}

// ---- hostile paths (k8s-wire.md §4 traps) ---------------------------------------------------

#[test]
fn hostile_paths() {
    let cases: &[(&str, RequestInfoError)] = &[
        ("/api/v1/namespaces/d/secrets%2Fx", E::EncodedSlash),
        ("/api/v1/namespaces/d/secrets%2fx", E::EncodedSlash),
        ("/api/v1/namespaces%2Fd/secrets", E::EncodedSlash),
        ("/api/v1/namespaces/d/secrets%252Fx", E::EncodedPercent),
        ("/api/v1/namespaces/d/secrets/%25", E::EncodedPercent),
        (
            "/api/v1/namespaces/d/configmaps/../secrets/x",
            E::DotSegment,
        ),
        ("/api/v1/namespaces/d/configmaps/./x", E::DotSegment),
        (
            "/api/v1/namespaces/d/configmaps/%2e%2e/secrets/x",
            E::DotSegment,
        ),
        (
            "/api/v1/namespaces/d/configmaps/.%2E/secrets/x",
            E::DotSegment,
        ),
        (
            "/api/v1/namespaces/d/configmaps/%2E./secrets/x",
            E::DotSegment,
        ),
        ("/api/v1/namespaces/d/configmaps/%2e/x", E::DotSegment),
        ("/api/v1/namespaces/d/pods/..", E::DotSegment),
        ("/api/v1/namespaces/d/pods/../", E::DotSegment),
        ("/..", E::DotSegment),
        ("/api/v1/namespaces/d/pods\\..\\secrets\\x", E::Backslash),
        ("/api/v1/namespaces/d/secrets%5cx", E::Backslash),
        ("/api/v1/namespaces/d/secrets%5Cx", E::Backslash),
        ("/api/v1//namespaces/d/secrets", E::EmptySegment),
        ("//api/v1/secrets", E::EmptySegment),
        ("/api/v1/secrets//", E::EmptySegment),
        ("//", E::EmptySegment),
        ("/api/v1/namespaces/d/secrets/x%00", E::ControlCharacter),
        ("/api/v1/namespaces/d/secrets/x\0", E::ControlCharacter),
        ("/api/v1/namespaces/d/secrets/x%0A", E::ControlCharacter),
        ("/api/v1/namespaces/d/secrets/x%7f", E::ControlCharacter),
        ("/api/v1/namespaces/d/secrets/x\t", E::ControlCharacter),
        ("/api/v1/namespaces/d/secrets/x%", E::InvalidPercentEncoding),
        (
            "/api/v1/namespaces/d/secrets/x%2",
            E::InvalidPercentEncoding,
        ),
        (
            "/api/v1/namespaces/d/secrets/x%zz",
            E::InvalidPercentEncoding,
        ),
        (
            "/api/v1/namespaces/d/secrets/x%%32%46",
            E::InvalidPercentEncoding,
        ),
        ("/api/v1/namespaces/d/secrets/x%FF", E::InvalidUtf8),
        ("/api/v1/namespaces/d/secrets/x%3F", E::EncodedDelimiter),
        ("/api/v1/namespaces/d/secrets/x%23y", E::EncodedDelimiter),
        ("/api/v1/namespaces/d/secrets#x", E::Fragment),
        ("/api/v1/namespaces/d/secrets/x y", E::InvalidCharacter(' ')),
        ("/api/v1/namespaces/d/secrets/é", E::InvalidCharacter('é')),
        ("/api/v1/namespaces/d/secrets/{x}", E::InvalidCharacter('{')),
        ("api/v1/pods", E::NotAbsolute),
        ("", E::NotAbsolute),
        ("*", E::NotAbsolute),
        ("http://evil/api/v1/pods", E::NotAbsolute),
    ];
    for (path, want) in cases {
        assert_eq!(
            parse(&Method::GET, path, None).as_ref().err(),
            Some(want),
            "{path:?}"
        );
    }
    let long = format!(
        "/api/v1/namespaces/d/configmaps/{}",
        "a".repeat(MAX_PATH_LEN)
    );
    assert_eq!(
        err("GET", &long),
        E::TooLong {
            len: long.len(),
            max: MAX_PATH_LEN
        }
    );
    let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert!(p("GET", &at_limit).is_ok());
    let deep = format!(
        "/api/v1/namespaces/d/pods/p/proxy{}",
        "/x".repeat(MAX_SEGMENTS)
    );
    assert_eq!(err("GET", &deep), E::TooManySegments);
    let ok_deep = "/x".repeat(MAX_SEGMENTS);
    assert!(p("GET", &ok_deep).is_ok());
}

#[test]
fn harmless_encodings_are_decoded_like_go() {
    // %73 is 's': Go decodes before splitting, so this *is* get secrets x.
    let i = check(
        "GET",
        "/api/v1/namespaces/d/%73ecrets/x",
        ("get", "secrets", "", "x", "d"),
    );
    assert_eq!(i.path, "/api/v1/namespaces/d/%73ecrets/x");
    check(
        "GET",
        "/api/v1/namespaces/d/configmaps/a%2Eb",
        ("get", "configmaps", "", "a.b", "d"),
    );
    check(
        "GET",
        "/api/v1/namespaces/d/configmaps/...",
        ("get", "configmaps", "", "...", "d"),
    );
    check(
        "GET",
        "/api/v1/namespaces/d/configmaps/a+b",
        ("get", "configmaps", "", "a+b", "d"),
    );
    check(
        "GET",
        "/api/v1/namespaces/d/configmaps/%C3%A9",
        ("get", "configmaps", "", "é", "d"),
    );
    check(
        "GET",
        "/api/v1/namespaces/d/configmaps/a;b=c",
        ("get", "configmaps", "", "a;b=c", "d"),
    );
}

#[test]
fn hostile_queries() {
    // `;` pairs: Go drops them silently, so the relay refuses the whole query.
    assert!(matches!(
        err("GET", "/api/v1/pods?watch=false;watch=true"),
        E::BadQuery(_)
    ));
    assert!(matches!(
        err("GET", "/api/v1/pods?a=1;&watch=true"),
        E::BadQuery(_)
    ));
    // Bad escapes: Go drops the pair.
    assert_eq!(
        err("GET", "/api/v1/pods?watch=%ZZ&watch=true"),
        E::InvalidPercentEncoding
    );
    assert_eq!(
        err("GET", "/api/v1/pods?w%tch=true"),
        E::InvalidPercentEncoding
    );
    assert_eq!(err("GET", "/api/v1/pods?watch=1#frag"), E::Fragment);
    assert_eq!(err("GET", "/api/v1/pods?watch=1\n"), E::ControlCharacter);
    assert!(matches!(err("GET", "/api/v1/pods?x=%00"), E::BadQuery(_)));
    assert!(matches!(err("GET", "/api/v1/pods?x=%FF"), E::BadQuery(_)));
    assert!(matches!(err("GET", "/api/v1/pods?x={y}"), E::BadQuery(_)));
    assert!(matches!(err("GET", "/api/v1/pods?x=a b"), E::BadQuery(_)));
    let many = vec!["a=1"; MAX_QUERY_PARAMS + 1].join("&");
    assert!(matches!(
        err("GET", &format!("/api/v1/pods?{many}")),
        E::BadQuery(_)
    ));
    let big = format!("/api/v1/pods?x={}", "a".repeat(MAX_QUERY_LEN));
    assert!(matches!(err("GET", &big), E::QueryTooLong { .. }));
    // First value wins.
    assert_eq!(
        ok("GET", "/api/v1/pods?watch=false&watch=true").verb,
        "list"
    );
    assert_eq!(
        ok("GET", "/api/v1/pods?watch=true&watch=false").verb,
        "watch"
    );
    // Empty query and empty pairs.
    assert_eq!(ok("GET", "/api/v1/pods?").verb, "list");
    assert_eq!(ok("GET", "/api/v1/pods?&&watch&").verb, "watch");
    // Decoded newlines in values are fine (exec command lines).
    assert_eq!(
        ok("GET", "/api/v1/namespaces/d/pods/p/exec?command=a%0Ab").subresource,
        "exec"
    );
}

// ---- query helpers --------------------------------------------------------------------------

#[test]
fn query_helpers() {
    let q = Some("a=1&b=x+y&a=2&c&d=&e=%41%2f&a=3");
    assert_eq!(query_first(q, "a").as_deref(), Some("1"));
    assert_eq!(query_all(q, "a"), ["1", "2", "3"]);
    assert_eq!(query_first(q, "b").as_deref(), Some("x y"));
    assert_eq!(query_first(q, "c").as_deref(), Some(""));
    assert_eq!(query_first(q, "d").as_deref(), Some(""));
    assert_eq!(query_first(q, "e").as_deref(), Some("A/"));
    assert_eq!(query_first(q, "z"), None);
    assert_eq!(query_first(None, "a"), None);
    assert!(query_all(None, "a").is_empty());
    assert_eq!(query_first(Some(""), "a"), None);
    // Go drops pairs containing ';' and pairs with bad escapes, keeping the rest.
    let q = Some("watch=false;x=1&watch=%zz&watch=%&watch=true&x%=1");
    assert_eq!(query_first(q, "watch").as_deref(), Some("true"));
    assert_eq!(query_all(q, "watch"), ["true"]);
    assert_eq!(query_first(Some("a;b=1&a=2"), "a").as_deref(), Some("2"));
    // Keys are decoded too, '+' included; matching is exact and case-sensitive.
    assert_eq!(
        query_first(Some("my+key=v&My%20key=w"), "my key").as_deref(),
        Some("v")
    );
    assert_eq!(query_first(Some("Watch=1"), "watch"), None);
    // Value split at the first '='.
    assert_eq!(query_first(Some("f=a=b"), "f").as_deref(), Some("a=b"));
    // Non-UTF-8 becomes U+FFFD rather than vanishing (presence still counts).
    assert_eq!(query_first(Some("w=%FF"), "w").as_deref(), Some("\u{fffd}"));
    // Literal '+' needs %2B.
    assert_eq!(query_first(Some("x=%2B"), "x").as_deref(), Some("+"));
}

#[test]
fn parse_uri_matches_parse() {
    for t in [
        "/api/v1/namespaces/d/pods?watch=1",
        "/apis/apps/v1/deployments",
        "/version",
        "/api/v1/namespaces/d/secrets%2Fx",
        "http://h:6443/api/v1/namespaces/d/configmaps/../secrets/x",
        "/api/v1/pods?a;b",
        "/api/v1/pods#frag",
    ] {
        let uri: Uri = t.parse().unwrap();
        assert_eq!(
            parse_uri(&Method::GET, &uri),
            parse(&Method::GET, uri.path(), uri.query()),
            "{t}"
        );
    }
    // http::Uri keeps the raw path: the dot segment is seen and refused.
    let uri: Uri = "/api/v1/namespaces/d/configmaps/%2e%2e/secrets/x"
        .parse()
        .unwrap();
    assert_eq!(parse_uri(&Method::GET, &uri), Err(E::DotSegment));
}

#[test]
fn invalid_name_rules() {
    assert_eq!(path_segment_name_error("."), Some("may not be '.'"));
    assert_eq!(path_segment_name_error(".."), Some("may not be '..'"));
    assert_eq!(path_segment_name_error("a/b"), Some("may not contain '/'"));
    assert_eq!(path_segment_name_error("a%b"), Some("may not contain '%'"));
    assert_eq!(path_segment_name_error("..."), None);
    assert_eq!(path_segment_name_error("a\\b"), None);
    assert_eq!(path_segment_name_error("ns1"), None);
}

#[test]
fn errors_display() {
    assert_eq!(
        E::TooLong {
            len: 5000,
            max: 4096
        }
        .to_string(),
        "path is 5000 bytes, the limit is 4096"
    );
    assert_eq!(
        E::BadQuery("';' separator").to_string(),
        "bad query: ';' separator"
    );
}

// ---- robustness -----------------------------------------------------------------------------

#[test]
fn no_panic_on_mutated_inputs() {
    let seeds = [
        "/api/v1/namespaces/default/pods?watch=true&fieldSelector=metadata.name%3Dp1",
        "/apis/apps/v1/namespaces/d/deployments/x/scale",
        "/api/v1/watch/namespaces/d/secrets/s?labelSelector=a%3Db,!c&limit=5",
        "/api/v1/namespaces/d/services/https:s:443/proxy/x?command=a+b",
        "/openapi/v3/api/v1?hash=ABC",
        "/",
    ];
    let alphabet: &[&str] = &[
        "%",
        "/",
        ".",
        "\\",
        "2",
        "f",
        "F",
        "e",
        "5",
        "c",
        "?",
        "#",
        "&",
        ";",
        "=",
        "+",
        ",",
        "!",
        "%2F",
        "%2e",
        "%25",
        "%00",
        "%C5%BF",
        "é",
        "ſ",
        "\0",
        " ",
        "watch",
        "namespaces",
        "proxy",
        "metadata.name",
        "fieldSelector=",
        "//",
        "..",
        "%5C",
        "a",
        "\u{10FFFF}",
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::HEAD,
        Method::PATCH,
        Method::PUT,
        Method::OPTIONS,
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..20_000 {
        let seed = seeds[round % seeds.len()];
        let mut s: Vec<char> = seed.chars().collect();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % (s.len() + 1);
            match next() % 3 {
                0 if !s.is_empty() => {
                    s.remove(at.min(s.len() - 1));
                }
                1 if !s.is_empty() => {
                    let frag: Vec<char> = alphabet[(next() as usize) % alphabet.len()]
                        .chars()
                        .collect();
                    let at = at.min(s.len() - 1);
                    s.splice(at..=at, frag);
                }
                _ => {
                    let frag = alphabet[(next() as usize) % alphabet.len()];
                    for (k, c) in frag.chars().enumerate() {
                        s.insert(at + k, c);
                    }
                }
            }
        }
        let target: String = s.into_iter().collect();
        let (path, query) = match target.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (target.as_str(), None),
        };
        let method = &methods[round % methods.len()];
        let _ = query_first(query, "watch");
        let _ = query_all(query, "command");
        match parse(method, path, query) {
            Ok(i) => {
                accepted += 1;
                assert_eq!(i.path, path);
                let low = path.to_ascii_lowercase();
                for bad in ["%2f", "%25", "%5c", "\\", "//", "%00", "#"] {
                    assert!(!low.contains(bad), "{path:?} accepted");
                }
                assert!(
                    !i.parts
                        .iter()
                        .any(|p| p == "." || p == ".." || p.contains('/') || p.is_empty()),
                    "{path:?}"
                );
                assert!(i.is_resource_request || i.parts.is_empty());
                if i.is_resource_request {
                    assert!(
                        !i.resource.is_empty() && !i.api_version.is_empty(),
                        "{path:?}"
                    );
                }
                // Deterministic.
                assert_eq!(parse(method, path, query), Ok(i));
            }
            Err(e) => {
                rejected += 1;
                let _ = e.to_string();
            }
        }
    }
    assert!(
        accepted > 1000 && rejected > 1000,
        "accepted {accepted}, rejected {rejected}"
    );
}
