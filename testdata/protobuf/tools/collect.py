#!/usr/bin/env python3
"""Turn server.py's raw captures into test vectors and print the capture table.

usage: collect.py RAWDIR TESTDATA_PROTOBUF_DIR
Writes <dir>/32/<name>.pb and <dir>/33/<name>.pb (every protobuf body of kubectl 1.32/1.33) and
<dir>/31/<name>.json (kubectl 1.31's JSON body for the same command, the expected decoding), and
prints a Markdown table: command → method, path and Content-Type per kubectl version.
<name> is the command's tag, with _<method> appended when the command sent several bodies.
"""
import glob, json, os, sys

raw, dst = sys.argv[1], sys.argv[2]
SKIP = {"secret_tls"}  # holds a private key: kept out of the repository
SHORT = {
    "application/vnd.kubernetes.protobuf": "**protobuf**",
    "application/json": "json",
    "application/merge-patch+json": "merge-patch",
    "application/strategic-merge-patch+json": "strategic-merge-patch",
    "application/apply-patch+yaml": "apply-patch+yaml",
}
for minor in ("31", "32", "33"):
    for old in glob.glob(os.path.join(dst, minor, "*.pb")) + glob.glob(os.path.join(dst, minor, "*.json")):
        os.remove(old)

table = {}  # (tag name, method, path) -> {minor: content type}
bodies = {}  # (minor, name) -> (content type, bytes)
for minor in sorted(os.listdir(raw)):
    for tag in sorted(os.listdir(os.path.join(raw, minor))):
        metas = [m for m in sorted(glob.glob(os.path.join(raw, minor, tag, "*.meta.json")))
                 if json.load(open(m))["body_len"]]
        for m in metas:
            d = json.load(open(m))
            body = open(m[:-len(".meta.json")] + ".body", "rb").read()
            name = tag if len(metas) == 1 else tag + "_" + d["method"].lower()
            ct = d["headers"].get("Content-Type", "")
            if ct == "application/vnd.kubernetes.protobuf" and not body.startswith(b"k8s\x00"):
                sys.exit("%s/%s: protobuf Content-Type without the k8s magic" % (minor, name))
            path = d["path"].split("?")[0]
            table.setdefault((name, d["method"], path), {})[minor] = SHORT.get(ct, ct)
            bodies[(minor, name)] = (ct, body)

written = 0
for (minor, name), (ct, body) in sorted(bodies.items()):
    if name.split("_post")[0].split("_delete")[0] in SKIP or name in SKIP:
        continue
    if minor in ("32", "33") and ct == "application/vnd.kubernetes.protobuf":
        os.makedirs(os.path.join(dst, minor), exist_ok=True)
        open(os.path.join(dst, minor, name + ".pb"), "wb").write(body)
        written += 1
        if minor == "32" and ("31", name) in bodies and bodies[("31", name)][0] == "application/json":
            os.makedirs(os.path.join(dst, "31"), exist_ok=True)
            open(os.path.join(dst, "31", name + ".json"), "wb").write(bodies[("31", name)][1])

minors = sorted({m for row in table.values() for m in row})
print("| command | request | " + " | ".join("1." + m for m in minors) + " |")
print("|---|---|" + "---|" * len(minors))
for (name, method, path), row in sorted(table.items()):
    print("| %s | %s %s | %s |" % (name, method, path, " | ".join(row.get(m, "—") for m in minors)))
print("\n%d protobuf vectors written" % written, file=sys.stderr)
