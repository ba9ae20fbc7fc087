#!/usr/bin/env python3
"""Generate the schema tables of hoop-kube's protobuf decoder (src/kube/protobuf_schema.rs).

Field numbers, order and proto types come from each group version's generated.proto; JSON names,
omitempty and pointer-ness from the Go struct tags in its types.go (which also carry the field
numbers: the two are cross-checked, and any mismatch stops the generator).

Usage: gen_schema.py API_GIT_DIR APIMACHINERY_GIT_DIR REF OUT.rs
  API_GIT_DIR, APIMACHINERY_GIT_DIR: clones of github.com/kubernetes/api and
  github.com/kubernetes/apimachinery (bare is fine); REF: the branch to read, release-1.33 for the
  current tables (a superset of release-1.32: field numbers are never reused).
"""
import re, subprocess, sys

API, APIMACHINERY, REF, OUT = sys.argv[1:5]
FILES = {  # short name -> (proto package, repository, directory)
    "meta": ("k8s.io.apimachinery.pkg.apis.meta.v1", APIMACHINERY, "pkg/apis/meta/v1"),
    "core": ("k8s.io.api.core.v1", API, "core/v1"),
    "apps": ("k8s.io.api.apps.v1", API, "apps/v1"),
    "authz": ("k8s.io.api.authorization.v1", API, "authorization/v1"),
    "authn": ("k8s.io.api.authentication.v1", API, "authentication/v1"),
    "autoscaling": ("k8s.io.api.autoscaling.v1", API, "autoscaling/v1"),
    "autoscaling2": ("k8s.io.api.autoscaling.v2", API, "autoscaling/v2"),
    "batch": ("k8s.io.api.batch.v1", API, "batch/v1"),
    "rbac": ("k8s.io.api.rbac.v1", API, "rbac/v1"),
    "networking": ("k8s.io.api.networking.v1", API, "networking/v1"),
    "policy": ("k8s.io.api.policy.v1", API, "policy/v1"),
    "scheduling": ("k8s.io.api.scheduling.v1", API, "scheduling/v1"),
    "certificates": ("k8s.io.api.certificates.v1", API, "certificates/v1"),
}


def git_show(repo, path):
    return subprocess.run(["git", "--git-dir", repo, "show", "%s:%s" % (REF, path)], check=True,
                          capture_output=True, text=True).stdout.splitlines()
# Messages with their own JSON form (handled by the decoder, not by a table).
SPECIAL = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.api.authorization.v1.ExtraValue": "StrList",
    "k8s.io.api.authentication.v1.ExtraValue": "StrList",
    "k8s.io.api.certificates.v1.ExtraValue": "StrList",
}
SCALARS = {"string": "Str", "bytes": "Bytes", "int32": "I32", "int64": "I64", "bool": "Bool"}
ROOTS = [  # apiVersion, kind, short, message
    ("v1", "Namespace", "core", "Namespace"),
    ("v1", "ConfigMap", "core", "ConfigMap"),
    ("v1", "Secret", "core", "Secret"),
    ("v1", "ServiceAccount", "core", "ServiceAccount"),
    ("v1", "Pod", "core", "Pod"),
    ("v1", "Service", "core", "Service"),
    ("v1", "ResourceQuota", "core", "ResourceQuota"),
    ("apps/v1", "Deployment", "apps", "Deployment"),
    ("batch/v1", "Job", "batch", "Job"),
    ("batch/v1", "CronJob", "batch", "CronJob"),
    ("autoscaling/v1", "Scale", "autoscaling", "Scale"),
    ("autoscaling/v1", "HorizontalPodAutoscaler", "autoscaling", "HorizontalPodAutoscaler"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "autoscaling2", "HorizontalPodAutoscaler"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "authz", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "authz", "SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "TokenRequest", "authn", "TokenRequest"),
    ("authentication.k8s.io/v1", "SelfSubjectReview", "authn", "SelfSubjectReview"),
    ("rbac.authorization.k8s.io/v1", "Role", "rbac", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rbac", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "rbac", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "rbac", "ClusterRoleBinding"),
    ("networking.k8s.io/v1", "Ingress", "networking", "Ingress"),
    ("policy/v1", "PodDisruptionBudget", "policy", "PodDisruptionBudget"),
    ("policy/v1", "Eviction", "policy", "Eviction"),
    ("scheduling.k8s.io/v1", "PriorityClass", "scheduling", "PriorityClass"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest", "certificates", "CertificateSigningRequest"),
]
DELETE_OPTIONS = ("meta", "DeleteOptions")

PKG2SHORT = {v[0]: k for k, v in FILES.items()}


def parse_proto(lines, path):
    msgs = {}
    cur = None
    depth = 0
    for line in lines:
        s = line.split("//")[0].strip()
        if not s:
            continue
        m = re.match(r"message (\w+) \{", s)
        if m:
            depth += 1
            if depth > 1:
                raise SystemExit("nested message in %s" % path)
            cur = m.group(1)
            msgs[cur] = []
            continue
        if s == "}":
            depth -= 1
            cur = None
            continue
        m = re.match(r"(optional|repeated) ([\w.]+) (\w+) = (\d+);", s)
        if m and cur:
            msgs[cur].append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
            continue
        m = re.match(r"map<string, ([\w.]+)> (\w+) = (\d+);", s)
        if m and cur:
            msgs[cur].append(("map", m.group(1), m.group(2), int(m.group(3))))
            continue
        if cur:
            raise SystemExit("unparsed in %s: %s" % (path, s))
    return msgs


def parse_go(lines):
    """struct -> {proto number: (json name, omitempty, pointer, inline, gotype)}"""
    structs = {}
    cur = None
    for line in lines:
        s = line.strip()
        m = re.match(r"type (\w+) struct \{", s)
        if m:
            cur = m.group(1)
            structs[cur] = {}
            continue
        if cur and s == "}":
            cur = None
            continue
        if not cur or s.startswith("//") or "`" not in s:
            continue
        m = re.match(r"(?:(\w+)\s+)?([^`]+?)\s*`([^`]*)`", s)
        if not m:
            raise SystemExit("go unparsed %s" % s)
        gotype, tags = m.group(2), m.group(3)
        j = re.search(r'json:"([^"]*)"', tags)
        p = re.search(r'protobuf:"(\w+),(\d+),', tags)
        if not p:
            continue
        jparts = j.group(1).split(",") if j else [""]
        name = jparts[0]
        structs[cur][int(p.group(2))] = (name, "omitempty" in jparts[1:], gotype.startswith("*"),
                                         name == "" and "inline" in jparts[1:], gotype)
    return structs


protos, gos = {}, {}
for short, (pkg, repo, d) in FILES.items():
    protos[short] = parse_proto(git_show(repo, d + "/generated.proto"), d)
    gos[short] = parse_go(git_show(repo, d + "/types.go"))


def resolve(short, t):
    """proto type name -> ('special', name) | ('scalar', name) | ('msg', short, name)"""
    if t in SCALARS:
        return ("scalar", SCALARS[t])
    full = t.lstrip(".") if t.startswith(".") else FILES[short][0] + "." + t
    if full in SPECIAL:
        return ("special", SPECIAL[full])
    pkg, name = full.rsplit(".", 1)
    if pkg not in PKG2SHORT:
        raise SystemExit("unknown package %s" % full)
    return ("msg", PKG2SHORT[pkg], name)


def rust_name(short, name):
    return (short + "_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)).upper()


order, seen = [], set()


def visit(short, name):
    if (short, name) in seen:
        return
    seen.add((short, name))
    order.append((short, name))
    for label, t, fname, num in protos[short][name]:
        r = resolve(short, t)
        if r[0] == "msg":
            visit(r[1], r[2])


for _, _, short, name in ROOTS:
    visit(short, name)
visit(*DELETE_OPTIONS)

out = []
w = out.append
w("//! Schema tables of the Kubernetes protobuf decoder: GENERATED, do not edit by hand.")
w("//!")
w("//! One `Message` per protobuf message that the decodable kinds can reach. Each field row is")
w("//! `f(number, json name, kind, flags)`, in the order of the Go struct (the order of")
w("//! encoding/json output). Numbers, order and proto types come from the generated.proto files")
w("//! of kubernetes/api and kubernetes/apimachinery at %s (a superset of release-1.32;" % REF)
w("//! numbers are never reused), JSON names and `OMIT` (omitempty) / `PTR` (Go pointer) / `INLINE`")
w("//! (embedded struct) from the json tags in the matching types.go. Generated by")
w("//! `testdata/protobuf/tools/gen_schema.py` (see its usage) from:")
for short, (_, repo, d) in FILES.items():
    w("//! - kubernetes/%s %s/generated.proto" % ("apimachinery" if repo == APIMACHINERY else "api", d))
w("")
w("use super::{f, Kind::*, Message, INLINE, MAP, OMIT, PTR, REP};")
w("")
w("/// (apiVersion, kind, message) of every top-level object the decoder accepts.")
w("pub(super) static KINDS: &[(&str, &str, &Message)] = &[")
for av, kind, short, name in ROOTS:
    w('    ("%s", "%s", &%s),' % (av, kind, rust_name(short, name)))
w("];")
w("")
w("/// (apiVersion, kind) pairs of `KINDS`, then `DeleteOptions` (decoded under any apiVersion).")
w("pub(super) static SUPPORTED: &[(&str, &str)] = &[")
for av, kind, short, name in ROOTS:
    w('    ("%s", "%s"),' % (av, kind))
w('    ("meta.k8s.io/v1", "DeleteOptions"),')
w("];")
w("")
w("/// `DeleteOptions`: every group version registers it, so it is accepted under any apiVersion.")
w("pub(super) static DELETE_OPTIONS: &Message = &%s;" % rust_name(*DELETE_OPTIONS))
nfields = 0
for short, name in order:
    go = gos[short].get(name)
    if go is None:
        raise SystemExit("no Go struct %s.%s" % (short, name))
    rows = []
    pnums = set()
    for label, t, fname, num in protos[short][name]:
        pnums.add(num)
        if num not in go:
            raise SystemExit("%s.%s field %d (%s) missing in Go" % (short, name, num, fname))
        jname, omit, ptr, inline, gotype = go[num]
        r = resolve(short, t)
        kind = {"scalar": lambda: r[1], "special": lambda: r[1], "msg": lambda: "M(&%s)" % rust_name(r[1], r[2])}[r[0]]()
        flags = []
        if label == "repeated":
            flags.append("REP")
        if label == "map":
            flags.append("MAP")
        if omit:
            flags.append("OMIT")
        if ptr:
            flags.append("PTR")
        if inline:
            flags.append("INLINE")
            if r[0] != "msg":
                raise SystemExit("inline non-message %s.%s" % (name, fname))
        elif not jname:
            raise SystemExit("no json name %s.%s.%s" % (short, name, fname))
        rows.append('    f(%d, "%s", %s, %s),' % (num, jname, kind, " | ".join(flags) or "0"))
    extra = set(go) - pnums
    if extra:
        raise SystemExit("%s.%s: Go fields %s not in proto" % (short, name, extra))
    nfields += len(rows)
    w("")
    w('static %s: Message = Message { name: "%s.%s", fields: &[' % (rust_name(short, name), {"meta": "meta", "autoscaling2": "autoscaling.v2"}.get(short, FILES[short][0].split(".")[-2]), name))
    out.extend(rows)
    w("] };")

open(OUT, "w").write("\n".join(out) + "\n")
print("messages", len(order), "fields", nfields, file=sys.stderr)
