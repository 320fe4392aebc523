#!/usr/bin/env bash
# Builds trm-node and trm-admin, then starts a local three-country federation on loopback:
# Albania (AL, origin), Italy (IT) and France (FR, destinations), data under one folder.
# Makes them peers, sends a synthetic referral from Italy to Albania, prints what Albania
# received and its verification, and leaves the nodes running until Ctrl-C.
#
# Environment: TRM_FED_DIR (default ./federation-data), TRM_FED_BASE_PORT (default 47100).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${TRM_FED_DIR:-$root/federation-data}
base=${TRM_FED_BASE_PORT:-47100}

echo "== building (first build takes a few minutes)"
cargo build --release -p trm-node -p trm-admin
bin=$root/target/release
node=$bin/trm-node
admin=$bin/trm-admin

if [ -e "$data" ]; then
  echo "== $data exists from an earlier run; remove it to start afresh"
  echo "   rm -rf '$data'"
  exit 64
fi
mkdir -p "$data"

countries=(AL IT FR)
names=("Albania national referral unit" "Italy national referral unit" "France national referral unit")
pids=()
cleanup() {
  echo
  echo "== stopping nodes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait || true
}
trap cleanup EXIT INT TERM

# France may hold no personal data: it publishes an acceptance profile without identity,
# family, health and child.
accept=("" "" "--accept=reference,exploitation,assistance,risk,return,proceedings")
i=0
for cc in "${countries[@]}"; do
  port=$((base + 2 * i)); aport=$((base + 2 * i + 1))
  "$node" init --dir "$data/$cc" --country "$cc" --name "${names[$i]}" \
    --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$aport" ${accept[$i]} >/dev/null
  i=$((i + 1))
done

# Italy's law (in this demo) lets it send every category to Albania and France; what leaves
# is still cut down by each receiver's acceptance profile, consent and a supervisor's approval.
all='["reference", "exploitation", "assistance", "risk", "return", "proceedings", "identity", "family", "health", "child"]'
sed -i "s/^\[outgoing\]\$/[outgoing]\nAL = $all\nFR = $all/" "$data/IT/node.toml"

for cc in "${countries[@]}"; do
  "$node" run --dir "$data/$cc" 2>"$data/$cc.log" &
  pids+=($!)
done
for cc in "${countries[@]}"; do
  ok=""
  for _ in $(seq 1 50); do
    if "$admin" --cred "$data/$cc/operator.cred" status >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
  done
  if [ -z "$ok" ]; then
    echo "node $cc did not start; its log ($data/$cc.log) says:"
    tail -n 5 "$data/$cc.log"
    exit 1
  fi
done

for cc in "${countries[@]}"; do
  for other in "${countries[@]}"; do
    [ "$cc" = "$other" ] && continue
    # The agreement each partnership rests on travels, signed, in every referral (synthetic).
    "$admin" --cred "$data/$cc/operator.cred" peer add "$data/$other/card.trm" \
      --agreement "Synthetic MoU $cc-$other 2026/03" --legal-basis "synthetic demo basis" >/dev/null
  done
done
echo "== three nodes running and pinned to each other"

# An officer makes their key pair on their own machine (`officer keygen`, with the node's
# address and certificate fingerprint from the operator); the operator registers only the
# certificate (`officer add --cert`). Here both sides run on this machine.
enrol() { # country, name, role, credential file
  local st addr fp
  st=$("$admin" --cred "$data/$1/operator.cred" --json status)
  addr=$(printf '%s\n' "$st" | sed -n 's/.*"admin_listen": "\([^"]*\)".*/\1/p' | head -n 1)
  fp=$(printf '%s\n' "$st" | sed -n 's/.*"tls_certificate": "\([^"]*\)".*/\1/p' | head -n 1)
  "$admin" officer keygen "$2" --role "$3" --node "$addr" --node-cert "$fp" --out "$4" >/dev/null
  "$admin" --cred "$data/$1/operator.cred" officer add "$2" --role "$3" --cert "${4%.cred}.crt" >/dev/null
}
enrol IT "Officer Rossi-Example" officer "$data/it-officer.cred"
enrol IT "Supervisor Bianchi-Example" supervisor "$data/it-supervisor.cred"
enrol FR "Officer Martin-Example" officer "$data/fr-officer.cred"
enrol AL "Officer Hoxha-Example" officer "$data/al-officer.cred"

echo "== Italy records a synthetic case and previews the referral to Albania"
"$admin" --cred "$data/it-officer.cred" case create --file examples/adult-labour.json
case_id=$("$admin" --cred "$data/it-officer.cred" --json case list | sed -n 's/.*"id": "\([^"]*\)".*/\1/p' | head -n 1)
echo "== the supervisor's work queue: sensitive categories waiting for approval"
"$admin" --cred "$data/it-supervisor.cred" queue
echo "== a supervisor approves identity and health for the referral to Albania (four eyes)"
"$admin" --cred "$data/it-supervisor.cred" referral approve "$case_id" --to AL --categories identity,health
"$admin" --cred "$data/it-officer.cred" referral preview "$case_id" --to AL
"$admin" --cred "$data/it-officer.cred" referral send "$case_id" --to AL
echo "== the same case to France, whose law lets it receive no personal data"
"$admin" --cred "$data/it-officer.cred" policy show --to FR
"$admin" --cred "$data/it-officer.cred" referral send "$case_id" --to FR
echo "== an unaccompanied child's case (synthetic) to France: the child flag and the urgency travel"
echo "   in the referral's non-personal header, so France knows it is a child without any child field"
"$admin" --cred "$data/it-officer.cred" case create --file examples/child-unaccompanied.json
"$admin" --cred "$data/it-officer.cred" referral send IT-2026-0007 --to FR

echo "== waiting for Albania's signed receipt"
for _ in $(seq 1 50); do
  if "$admin" --cred "$data/al-officer.cred" --json inbox | grep -q '"kind": "referral"'; then break; fi
  sleep 0.2
done
echo "== Albania's work queue: the referral to accept or decline"
"$admin" --cred "$data/al-officer.cred" queue
msg=$("$admin" --cred "$data/al-officer.cred" --json inbox | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -n 1)
echo "== what Albania received, with its verification"
"$admin" --cred "$data/al-officer.cred" message show "$msg"
echo "== Albania accepts"
"$admin" --cred "$data/al-officer.cred" referral accept "$msg" --institution "Albania national referral unit (synthetic)" --focal-point "TRM duty desk"
echo "== Albania reports progress; Italy reads the follow-up in words"
fu=$("$admin" --cred "$data/al-officer.cred" --json followup send "$case_id" --to IT --phase first_assistance \
  --status "reception planned at the shelter" --date "$(date -u +%F)" | sed -n 's/.*"message": "\([0-9a-f]*\)".*/\1/p')
for _ in $(seq 1 50); do
  if "$admin" --cred "$data/it-officer.cred" message show "$fu" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
"$admin" --cred "$data/it-officer.cred" message show "$fu"
echo "== Italy updates its own record (the case is now an emergency); every version is kept"
sed 's/"urgency": "urgent"/"urgency": "emergency"/' examples/adult-labour.json >"$data/case-update.json"
"$admin" --cred "$data/it-officer.cred" case update "$case_id" --file "$data/case-update.json"
echo "== Italy's timeline of the case: messages both ways, versions by field path (never values)"
"$admin" --cred "$data/it-officer.cred" case timeline "$case_id"
echo "== France's inbox: the child case first, flagged as a child, though France holds no personal data"
for _ in $(seq 1 50); do
  if "$admin" --cred "$data/fr-officer.cred" --json inbox | grep -q '"IT-2026-0007"'; then break; fi
  sleep 0.2
done
"$admin" --cred "$data/fr-officer.cred" inbox
echo "== what France received of the adult case: no identity, family, health or child section"
fr_msg=$("$admin" --cred "$data/fr-officer.cred" --json inbox | grep -A14 '"case_ref": "IT-2026-0001"' | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -n 1)
"$admin" --cred "$data/fr-officer.cred" --json message show "$fr_msg" | grep -E '^    "[a-z]+": \{' || true
echo "== Italy's status"
"$admin" --cred "$data/it-officer.cred" status

echo "== an auditor exports Albania's audit log; anyone verifies it offline (no node, no credential)"
enrol AL "Auditor Example" auditor "$data/al-auditor.cred"
"$admin" --cred "$data/al-auditor.cred" audit export --out "$data/al-audit.trm"
"$admin" audit verify "$data/al-audit.trm"

echo "== the officers' consoles: open a link in a browser on this machine (each link works once)"
# A console runs while its standard input is open: this script holds a pipe open for both
# and closes it when it stops, so the consoles stop with the nodes (docs/CONSOLE.md).
mkfifo "$data/console.stdin"
exec 3<>"$data/console.stdin"
for who in it-officer al-officer; do
  "$admin" --cred "$data/$who.cred" console <&3 >"$data/$who.console" 2>>"$data/$who.console.log" &
  pids+=($!)
done
for who in it-officer al-officer; do
  url=""
  for _ in $(seq 1 50); do
    url=$(head -n 1 "$data/$who.console" 2>/dev/null)
    [ -n "$url" ] && break
    sleep 0.2
  done
  echo "   $who: ${url:-did not start (see $data/$who.console.log)}"
done

cat <<TXT

The federation keeps running (logs in $data/*.log). Try next:
  export TRM_CRED=$data/it-officer.cred
  $admin queue
  $admin case template
  $admin case timeline $case_id
  $admin referral preview $case_id --to FR
  TRM_CRED=$data/al-officer.cred $admin followup send $case_id --to IT --phase return --status "reception planned"
  $admin case consent $case_id --withdraw health --yes  # erases here, asks Albania to erase
  $admin policy show
  TRM_CRED=$data/it-supervisor.cred $admin stats
  $admin status
Press Ctrl-C to stop the nodes and the consoles (the outboxes are kept on disk).
TXT
wait
