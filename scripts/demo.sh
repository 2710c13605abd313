#!/usr/bin/env bash
# `make demo`: starts Apache on 127.0.0.1 with the built mod_fastcgi.so and
# the seed guide's flup application as a static FastCGI application
# (`FastCgiServer ... -processes 4`, started by the module's process
# manager), plus the same application as an external server, prints the
# URLs and stays in the foreground until Ctrl-C; then stops everything it
# started (by pid) and removes its temporary directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
port=${DEMO_PORT:-8080}
while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done

root=$(mktemp -d /tmp/mod_fastcgi-demo.XXXXXX)
chmod 0755 "$root"
mkdir -p "$root"/{conf,logs,htdocs,run}
chown www-data:www-data "$root/run"
install -m 0755 "$top/conf-examples/app.py" "$root/htdocs/app.py"
install -m 0755 "$top/conf-examples/app.py" "$root/htdocs/external.py"
cat > "$root/htdocs/index.html" <<HTML
<html><body><p>mod_fastcgi demo: <a href="/app.py">/app.py</a> is the seed guide's flup application run by
the module's process manager (4 processes); <a href="/external.py">/external.py</a> is the same application
started separately and reached as an external server.</p></body></html>
HTML
mpm=${DEMO_MPM:-event}
cat > "$root/conf/httpd.conf" <<CONF
ServerRoot "$root"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
LoadModule mpm_${mpm}_module /usr/lib/apache2/modules/mod_mpm_${mpm}.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule fastcgi_module $top/mod_fastcgi.so
TypesConfig /etc/mime.types
User www-data
Group www-data
PidFile $root/run/httpd.pid
ErrorLog $root/logs/error_log
LogLevel warn
DefaultRuntimeDir $root/run
DocumentRoot $root/htdocs
DirectoryIndex index.html
<Directory $root/htdocs>
    Options FollowSymLinks ExecCGI
    Require all granted
</Directory>
<Files app.py>
    SetHandler fastcgi-script
</Files>
FastCgiIpcDir $root/run/fastcgi
# Seed guide, "For the lazy" / static mode:
FastCgiServer $root/htdocs/app.py -processes 4 -socket app.sock
# Seed guide, external mode:
FastCgiExternalServer $root/htdocs/external.py -socket external.sock
CONF

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$root"
  echo "demo stopped"
}
trap cleanup INT TERM EXIT

/usr/sbin/apache2 -d "$root" -f "$root/conf/httpd.conf" -t
mkdir -p "$root/run/fastcgi"; chown www-data:www-data "$root/run/fastcgi"; chmod 0700 "$root/run/fastcgi"
setpriv --reuid=www-data --regid=www-data --init-groups /usr/bin/python3 "$root/htdocs/external.py" "$root/run/fastcgi/external.sock" \
  >>"$root/logs/app.log" 2>&1 &
pids+=($!)
/usr/sbin/apache2 -d "$root" -f "$root/conf/httpd.conf" -DFOREGROUND &
pids+=($!)
for _ in $(seq 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/app.py" 2>/dev/null && break
  sleep 0.2
done
echo
echo "mod_fastcgi demo is running: http://127.0.0.1:$port/app.py (static, 4 processes)"
echo "                             http://127.0.0.1:$port/external.py (external server)"
echo "  (Apache error log: $root/logs/error_log; press Ctrl-C to stop)"
curl -sS "http://127.0.0.1:$port/app.py" | sed 's/^/  | /'
echo
sleep 3.5  # the 4 static processes start 1 s apart (-init-start-delay)
echo "  processes:"
ps -eo pid,ppid,user,args | grep -E "fcgi-pm|app.py|external.py" | grep -v grep | sed 's/^/  /'
wait "${pids[1]}"
