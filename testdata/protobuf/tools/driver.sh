#!/bin/bash
# Runs the captured kubectl commands of one version against server.py.
# usage: driver.sh MINOR KUBECONFIG PORT CERTDIR [TAG...]   (with TAGs: run only those commands)
# The secret_tls command uses CERTDIR's throwaway key; collect.py keeps that vector out of the repo.
set -u
cd "$(dirname "$0")/inputs"
V=$1 KUBECONFIG_FILE=$2 PORT=$3 CERTS=$4; shift 4; ONLY=" $* "
K="$(dirname "$(readlink -f "$(command -v kubectl)")")/kubectl.1.$V"
CACHE=$(mktemp -d)
OUT_RC=${OUT_RC:-/dev/null}
run() { # tag, args...
  local tag=$1; shift
  if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $tag "* ]]; then return; fi
  curl -sk "https://127.0.0.1:$PORT/__tag/$V/$tag" >/dev/null
  timeout 30 "$K" --kubeconfig "$KUBECONFIG_FILE" --cache-dir "$CACHE" "$@" >/dev/null 2>"$CACHE/stderr"
  local rc=$?
  echo "$V $tag rc=$rc" >> "$OUT_RC"
  [ $rc = 0 ] || { echo "kubectl 1.$V $tag: rc=$rc: $(head -c 300 "$CACHE/stderr")" >&2; }
}
run configmap create configmap c1 --from-literal=a=b --from-literal=c=d --validate=false
run configmap_fromfile create configmap c2 --from-file=file.txt --from-file=bin=bin.dat --validate=false
run configmap_envfile create configmap c3 --from-env-file=env.txt --validate=false
run secret_generic create secret generic s1 --from-literal=password=hunter2 --validate=false
run secret_binary create secret generic s2 --from-file=bin=bin.dat --type=Opaque --validate=false
run secret_docker create secret docker-registry r --docker-server=x --docker-username=u --docker-password=p --validate=false
run secret_tls create secret tls t1 --cert="$CERTS/cert.pem" --key="$CERTS/key.pem" --validate=false
run namespace create namespace ns1 --validate=false
run serviceaccount create serviceaccount sa1 --validate=false
run deployment create deployment web --image=nginx --replicas=2 --port=80 --validate=false
run deployment_multi create deployment web2 --image=nginx --image=redis --validate=false
run run_p1 run p1 --image=busybox --restart=Never --env=A=1 --labels=app=x -- sh -c "echo hi"
run run_p2_noattach run p2 --image=busybox -i --tty --restart=Never --attach=false
run run_p3_overrides run p3 --image=busybox --restart=Never --port=8080 --image-pull-policy=IfNotPresent --annotations=k=v --labels=app=y,tier=z --overrides="$(cat overrides.json)"
run run_p4_privileged run p4 --image=busybox --restart=Never --privileged --env=X=y --expose=false
run label label pod p1 a=b
run annotate annotate pod p1 note=hello
run scale scale deployment web --replicas=3
run rollout_restart rollout restart deployment web
run set_image set image deployment/web nginx=nginx:1.27
run delete_pod delete pod p1 --wait=false
run delete_pod_force delete pod p1 --grace-period=0 --force --wait=false
run delete_deploy_fg delete deployment web --cascade=foreground --wait=false
run delete_wait delete pod p1
run can_i auth can-i create pods
run can_i_sub auth can-i get pods --subresource=log -n kube-system
run can_i_nonresource auth can-i get /healthz
run can_i_list auth can-i --list
run whoami auth whoami
run token create token sa1
run token_bound create token sa1 --audience=a --audience=b --duration=1h --bound-object-kind=Pod --bound-object-name=p1 --bound-object-uid=11111111-2222-3333-4444-555555555555
run create_f create -f cm.yaml --validate=false
run apply_f apply -f cm.yaml --validate=false
run apply_ss apply --server-side -f cm.yaml --validate=false
run replace_f replace -f cm.yaml --validate=false
run job create job j1 --image=busybox -- echo hi
run cronjob create cronjob cj1 --image=busybox --schedule="*/1 * * * *" -- echo hi
run role create role r1 --verb=get --resource=pods
run rolebinding create rolebinding rb1 --role=r1 --user=bob
run clusterrole create clusterrole cr1 --verb=get --resource=pods
run clusterrolebinding create clusterrolebinding crb1 --clusterrole=cr1 --serviceaccount=default:sa1
run quota create quota q1 --hard=pods=2
run priorityclass create priorityclass pc1 --value=10
run pdb create pdb pdb1 --selector=app=x --min-available=1
run service create service clusterip svc1 --tcp=80:8080
run ingress create ingress ing1 --rule="foo.com/bar=svc1:8080"
run autoscale autoscale deployment web --max=3
run expose expose deployment web --port=80
run cordon cordon n1
run drain drain n1 --force --timeout=5s
run debug_node debug node/n1 --image=busybox
run debug_copy debug p1 --image=busybox --copy-to=p1d
run debug_ephemeral debug p1 --image=busybox
run debug_copy_rich debug rich --image=busybox --copy-to=rich2 --share-processes --env=D=1
run debug_replace debug p1 --image=busybox --copy-to=p1r --replace
# server.py leaves pods/eviction out of discovery for tags containing "noevict"
run drain_noevict drain n1 --force --timeout=5s
run csr_approve certificate approve csr1
run csr_deny certificate deny csr2
run debug_copy_sink debug sink --image=busybox --copy-to=sink2 --container=a --same-node
run job_from_cronjob create job j2 --from=cronjob/richcj
run csr_approve_rich certificate approve csrrich
run auth_reconcile auth reconcile -f role.yaml
rm -rf "$CACHE"
