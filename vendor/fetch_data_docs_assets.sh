#!/usr/bin/env bash
# Re-create vendor/data_docs/ from the npm registry: the CSS/JS that GX Data Docs pages load from
# public CDNs, at the versions the pages name (order_tracking/reports/data_docs_offline.py maps each CDN
# URL to one of these files). Needs `npm` and network; run it only when GX changes its CDN links.
# vega/vega-lite/vega-embed are referenced unversioned ("vega@5"): the newest 5.x/6.x at the time.
set -euo pipefail
cd "$(dirname "$0")"
DEST=data_docs
# package@version  then the files to keep, relative to the package root
SPEC='
bootstrap@4.3.1 dist/css/bootstrap.min.css dist/js/bootstrap.min.js
@forevolve/bootstrap-dark@1.1.0 dist/css/bootstrap-prefers-dark.css
bootstrap-datepicker@1.9.0 dist/css/bootstrap-datepicker.min.css dist/js/bootstrap-datepicker.min.js
@fortawesome/fontawesome-free@6.6.0 css/all.min.css webfonts/fa-brands-400.woff2 webfonts/fa-regular-400.woff2 webfonts/fa-solid-900.woff2 webfonts/fa-v4compatibility.woff2 LICENSE.txt
popper.js@1.12.9 dist/umd/popper.min.js
jquery@3.7.1 dist/jquery.min.js LICENSE.txt
bootstrap-table@1.19.1 dist/bootstrap-table.min.css dist/bootstrap-table.min.js dist/extensions/filter-control/bootstrap-table-filter-control.min.js LICENSE
bootstrap-table@1.19.0 dist/extensions/filter-control/bootstrap-table-filter-control.css dist/extensions/filter-control/bootstrap-table-filter-control.min.css
vega@5.33.1 build/vega.min.js
vega-lite@5.23.0 build/vega-lite.min.js
vega-embed@6.29.0 build/vega-embed.min.js
'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$DEST"
mkdir -p "$DEST"
{
  echo "# Data Docs assets for offline viewing, from the npm registry (npm pack), unmodified."
  echo "# Directory per package: <name with @scope/ as scope->@version>; regenerate: vendor/fetch_data_docs_assets.sh"
} >"$DEST/VERSIONS.txt"
echo "$SPEC" | while read -r pkg files; do
  [ -n "$pkg" ] || continue
  dir="${pkg#@}"; dir="${dir/\//-}"  # @scope/name@1.0 -> scope-name@1.0
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  tgz=$(ls -t "$tmp"/*.tgz | head -1)
  mkdir -p "$tmp/x" && tar xzf "$tgz" -C "$tmp/x" && rm "$tgz"
  echo "$pkg" >>"$DEST/VERSIONS.txt"
  for f in $files; do
    [ -f "$tmp/x/package/$f" ] || continue  # a LICENSE file name varies between packages
    mkdir -p "$DEST/$dir/$(dirname "$f")"
    cp "$tmp/x/package/$f" "$DEST/$dir/$f"
    echo "  $dir/$f  sha256:$(sha256sum "$DEST/$dir/$f" | cut -c1-64)" >>"$DEST/VERSIONS.txt"
  done
  rm -rf "$tmp/x"
done
du -sh "$DEST"
