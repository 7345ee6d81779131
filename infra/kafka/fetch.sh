#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars pinned in infra/kafka/pom.xml from Maven Central into infra/kafka/target/libs
# (tests/support/broker.py runs them). Idempotent: does nothing when the jars for this exact pom are already there.
# Needs java and mvn. Prints the jar directory on its last line (stdout); progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
libs="$here/target/libs"
stamp="$libs/.fetched-$(sha256sum "$here/pom.xml" | cut -c1-16)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"

if [[ -f "$stamp" ]]; then
  echo "kafka $version jars already in $libs" >&2
  echo "$libs"
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
rm -rf "$libs" "$here"/target/kafka-cds-*.jsa
start=$(date +%s)
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$libs" -DincludeScope=runtime >&2
touch "$stamp"
echo "fetched kafka $version: $(ls "$libs"/*.jar | wc -l) jars, $(du -sh "$libs" | cut -f1), $(($(date +%s) - start)) s" >&2
echo "$libs"
