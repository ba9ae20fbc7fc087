#!/usr/bin/env python3
"""Throwaway fake kube-apiserver (HTTPS, HTTP/1.1) that records every request kubectl makes.

Usage: server.py PORT OUTDIR CERTDIR   (CERTDIR holds cert.pem and key.pem)
A GET to /__tag/<minor>/<tag> sets the directory that following requests are saved under
(OUTDIR/<minor>/<tag>/NNN-METHOD.{meta.json,body}). It answers legacy discovery, GETs with a
synthesised object (a few names get rich objects from inputs/, for kubectl debug --copy-to,
create job --from and certificate approve to copy), and POST/PUT/PATCH/DELETE with just enough
for kubectl to exit 0. Only for capturing test vectors: it trusts and checks nothing.
"""
import json, os, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
OUT = sys.argv[2]
CERTS = sys.argv[3]
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inputs")
state = {"tag": "untagged", "n": 0, "gone": set()}
lock = threading.Lock()

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

def res(name, kind, namespaced=True, verbs=VERBS, singular=""):
    return {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": verbs}

CORE = [
    res("namespaces", "Namespace", False, singular="namespace"),
    res("pods", "Pod", singular="pod"),
    res("pods/attach", "PodAttachOptions", verbs=["create", "get"]),
    res("pods/exec", "PodExecOptions", verbs=["create", "get"]),
    res("pods/log", "Pod", verbs=["get"]),
    dict(res("pods/eviction", "Eviction", verbs=["create"]), group="policy", version="v1"),
    res("secrets", "Secret", singular="secret"),
    res("configmaps", "ConfigMap", singular="configmap"),
    res("serviceaccounts", "ServiceAccount", singular="serviceaccount"),
    res("serviceaccounts/token", "TokenRequest", verbs=["create"]),
    res("services", "Service", singular="service"),
    res("events", "Event", singular="event"),
    res("nodes", "Node", False, singular="node"),
    res("resourcequotas", "ResourceQuota", singular="resourcequota"),
]
GROUPS = {
    "apps/v1": [res("deployments", "Deployment", singular="deployment"),
                res("deployments/scale", "Scale", verbs=["get", "patch", "update"]),
                res("replicasets", "ReplicaSet", singular="replicaset")],
    "batch/v1": [res("jobs", "Job", singular="job"), res("cronjobs", "CronJob", singular="cronjob")],
    "rbac.authorization.k8s.io/v1": [res("roles", "Role", singular="role"),
                                     res("rolebindings", "RoleBinding", singular="rolebinding"),
                                     res("clusterroles", "ClusterRole", False, singular="clusterrole"),
                                     res("clusterrolebindings", "ClusterRoleBinding", False, singular="clusterrolebinding")],
    "authorization.k8s.io/v1": [res("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ["create"]),
                                res("selfsubjectrulesreviews", "SelfSubjectRulesReview", False, ["create"])],
    "authentication.k8s.io/v1": [res("selfsubjectreviews", "SelfSubjectReview", False, ["create"])],
    "autoscaling/v1": [res("horizontalpodautoscalers", "HorizontalPodAutoscaler", singular="horizontalpodautoscaler")],
    "autoscaling/v2": [res("horizontalpodautoscalers", "HorizontalPodAutoscaler", singular="horizontalpodautoscaler")],
    "certificates.k8s.io/v1": [res("certificatesigningrequests", "CertificateSigningRequest", False, singular="certificatesigningrequest"),
                               res("certificatesigningrequests/approval", "CertificateSigningRequest", False, ["get", "patch", "update"])],
    "policy/v1": [res("poddisruptionbudgets", "PodDisruptionBudget", singular="poddisruptionbudget")],
    "scheduling.k8s.io/v1": [res("priorityclasses", "PriorityClass", False, singular="priorityclass")],
    "networking.k8s.io/v1": [res("ingresses", "Ingress", singular="ingress")],
}
KIND_BY_RESOURCE = {}
for gv, rs in [("v1", CORE)] + list(GROUPS.items()):
    for r in rs:
        KIND_BY_RESOURCE[(gv, r["name"])] = r["kind"]


def split_path(path):
    """Return (groupVersion, namespace, resource, name, subresource)."""
    p = path.split("?")[0].strip("/").split("/")
    if p[0] == "api":
        gv, rest = p[1], p[2:]
    else:
        gv, rest = p[1] + "/" + p[2], p[3:]
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    resource = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return gv, ns, resource, name, sub


def synth(gv, ns, resource, name, sub):
    kind = KIND_BY_RESOURCE.get((gv, resource + ("/" + sub if sub else "")), KIND_BY_RESOURCE.get((gv, resource), "Unknown"))
    meta = {"name": name or "x", "uid": "11111111-2222-3333-4444-555555555555", "resourceVersion": "7",
            "creationTimestamp": "2024-01-02T03:04:05Z"}
    if ns:
        meta["namespace"] = ns
    obj = {"kind": kind, "apiVersion": gv, "metadata": meta}
    if kind == "Pod" and name == "sink":
        sink = json.load(open(os.path.join(HERE, "sink.json")))
        obj["metadata"].update(sink["metadata"])
        obj["spec"] = sink["spec"]
        obj["status"] = {"phase": "Running"}
    elif kind == "CronJob" and name == "richcj":
        obj["spec"] = json.load(open(os.path.join(HERE, "richcj.json")))
    elif kind == "CertificateSigningRequest" and name == "csrrich":
        obj.update(json.load(open(os.path.join(HERE, "csrrich.json"))))
    elif kind == "Pod" and name == "rich":
        obj["metadata"]["labels"] = {"app": "rich", "tier": "be"}
        obj["metadata"]["annotations"] = {"note": "hello"}
        obj["spec"] = json.load(open(os.path.join(HERE, "overrides.json")))["spec"]
        obj["spec"]["restartPolicy"] = "Always"
        obj["spec"]["dnsPolicy"] = "ClusterFirst"
        obj["status"] = {"phase": "Running"}
    elif kind == "Pod":
        obj["spec"] = {"containers": [{"name": name or "c", "image": "busybox"}], "securityContext": {}}
        obj["status"] = {"phase": "Running"}
    elif kind == "Deployment":
        obj["spec"] = {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}
        obj["status"] = {"replicas": 2}
    elif kind == "Scale":
        obj["apiVersion"] = "autoscaling/v1"
        obj["spec"] = {"replicas": 2}
        obj["status"] = {"replicas": 2, "selector": "app=web"}
    elif kind == "TokenRequest":
        obj["apiVersion"] = "authentication.k8s.io/v1"
        obj["spec"] = {"audiences": ["https://kubernetes.default.svc"]}
        obj["status"] = {"token": "eyJhbGciOiJSUzI1NiJ9.e30.sig", "expirationTimestamp": "2030-01-01T00:00:00Z"}
    elif kind == "SelfSubjectAccessReview":
        obj["spec"] = {}
        obj["status"] = {"allowed": True}
    elif kind == "SelfSubjectReview":
        obj["status"] = {"userInfo": {"username": "u"}}
    elif kind == "SelfSubjectRulesReview":
        obj["spec"] = {"namespace": "default"}
        obj["status"] = {"resourceRules": [], "nonResourceRules": [], "incomplete": False}
    elif kind == "CertificateSigningRequest":
        obj["spec"] = {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K", "signerName": "kubernetes.io/kube-apiserver-client",
                       "usages": ["client auth"], "username": "bob", "groups": ["system:authenticated"]}
        obj["status"] = {}
    elif kind == "Eviction":
        obj["apiVersion"] = "policy/v1"
    return obj


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def record(self, body):
        with lock:
            state["n"] += 1
            n = state["n"]
            d = os.path.join(OUT, state["tag"])
        os.makedirs(d, exist_ok=True)
        base = os.path.join(d, "%03d-%s" % (n, self.command))
        with open(base + ".meta.json", "w") as f:
            json.dump({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                       "body_len": len(body)}, f, indent=1)
        if body:
            with open(base + ".body", "wb") as f:
                f.write(body)

    def send_json(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        if path.startswith("/__tag/"):
            with lock:
                state["tag"] = path[len("/__tag/"):]
                state["gone"] = set()
            return self.send_json(200, {})
        self.record(body)
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % PORT}]})
        if path == "/apis":
            groups = {}
            for gv in GROUPS:
                g, v = gv.split("/")
                e = groups.setdefault(g, {"name": g, "versions": [], "preferredVersion": {"groupVersion": gv, "version": v}})
                e["versions"].append({"groupVersion": gv, "version": v})
                e["preferredVersion"] = {"groupVersion": gv, "version": v}
            groups = list(groups.values())
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/api/v1":
            core = [r for r in CORE if not ("noevict" in state["tag"] and r["name"] == "pods/eviction")]
            return self.send_json(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": core})
        for gv, rs in GROUPS.items():
            if path == "/apis/" + gv:
                return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs})
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if path.startswith("/openapi") or not (path.startswith("/api/") or path.startswith("/apis/")):
            return self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"})
        gv, ns, resource, name, sub = split_path(path)
        key = (resource, name)
        if self.command == "POST" and sub == "eviction":
            state["gone"].add(key)
        if self.command == "DELETE":
            state["gone"].add(key)
        if self.command == "GET" and key in state["gone"]:
            return self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound",
                                        "details": {"name": name, "kind": resource}})
        if self.command == "GET" and resource == "pods" and name is None and "nodeName" in self.path:
            pod = synth(gv, "default", "pods", "p9", None)
            pod["spec"]["nodeName"] = "n1"
            return self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}, "items": [pod]})
        if self.command == "POST":
            if name and not sub:
                sub = None
            if resource and name and sub:
                return self.send_json(201, synth(gv, ns, resource, name, sub))
            # echo a minimal object of the collection's kind
            return self.send_json(201, synth(gv, ns, resource, "x", None))
        if self.command == "DELETE":
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if self.command == "GET" and name is None:
            kind = KIND_BY_RESOURCE.get((gv, resource), "Unknown")
            return self.send_json(200, {"kind": kind + "List", "apiVersion": gv, "metadata": {"resourceVersion": "7"}, "items": []})
        return self.send_json(200, synth(gv, ns, resource, name, sub))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(CERTS, "cert.pem"), os.path.join(CERTS, "key.pem"))
srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", PORT, flush=True)
srv.serve_forever()
