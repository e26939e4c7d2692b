#!/usr/bin/env bash
# Throwaway mail servers for Relais tests and for trying Relais by hand:
# Dovecot (IMAP with IDLE, plain text on loopback) and Postfix (SMTP) that
# delivers every accepted mail into Dovecot over LMTP.
#
# Usage: tests/mail-servers.sh start [--keep] | stop | status | env
#                              start-imap | stop-imap | start-smtp | stop-smtp
#                              uidvalidity USER MAILBOX [NEW_VALUE]
#
# Both servers are private instances: their own configuration, sockets, queue,
# logs and mail store live in one state directory, and they listen on
# 127.0.0.1 only, on ports of their own, so they never clash with a system
# Dovecot or Postfix. Any user name logs in with the one test password, and
# a user's mail is the Maildir $STATE/mail/DOMAIN/LOCALPART/Maildir.
# A recipient whose local part starts with "reject" is refused with 550.
#
# Environment (all optional):
#   RELAIS_MAIL_DIR             state directory (default: <repo>/target/mail-servers)
#   RELAIS_TEST_IMAP_PORT       IMAP port (default 10143)
#   RELAIS_TEST_SMTP_PORT       SMTP port (default 10025)
#   RELAIS_TEST_MAIL_PASSWORD   the password of every user (default relais-test)
# All but "env" and "status" need root: they install packages and start the
# servers, whose masters run as root.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${RELAIS_MAIL_DIR:-$REPO/target/mail-servers}
IMAP_PORT=${RELAIS_TEST_IMAP_PORT:-10143}
SMTP_PORT=${RELAIS_TEST_SMTP_PORT:-10025}
PASSWORD=${RELAIS_TEST_MAIL_PASSWORD:-relais-test}
mkdir -p "$STATE" && STATE=$(cd "$STATE" && pwd)   # absolute, whatever the cwd
# Dovecot's sockets live in $STATE/dovecot, and a socket path has 107 bytes at most.
[ ${#STATE} -le 70 ] || { echo "mail-servers: RELAIS_MAIL_DIR is too long (sockets): $STATE" >&2; exit 1; }

DOVECOT_CONF=$STATE/dovecot.conf     # Dovecot's configuration
DOVECOT_RUN=$STATE/dovecot           # Dovecot's base_dir: sockets, master.pid, lmtp
POSTFIX_CONF=$STATE/postfix          # Postfix's config_directory (main.cf, master.cf)
POSTFIX_QUEUE=$STATE/postfix-queue   # Postfix's queue_directory
MAIL=$STATE/mail                     # the mail store, one Maildir per user

die() { echo "mail-servers: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root"; }
case $PASSWORD in *[[:space:]]*|'') die "RELAIS_TEST_MAIL_PASSWORD must be one word" ;; esac

# --- Installing -------------------------------------------------------------

# Installs the packages if a program is missing. A policy-rc.d keeps the
# packages' own services from starting during the install, and a system
# instance that started anyway is stopped: ours never need one.
install_if_missing() {
    command -v dovecot >/dev/null && command -v doveadm >/dev/null &&
        command -v postfix >/dev/null && [ -x /usr/lib/dovecot/lmtp ] &&
        command -v dnsmasq >/dev/null && command -v promtool >/dev/null &&
        command -v sieve-filter >/dev/null && return 0
    echo "mail-servers: installing dovecot (with sieve-filter, for a bench), postfix, dnsmasq and promtool..." >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    local made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then       # "do not start services"
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    # dnsmasq serves the DNS records (DKIM keys, DMARC policies) of the
    # sender-verification tests; each test starts its own. promtool (from
    # prometheus) checks the metrics a scrape gets; its server never runs.
    local pkgs=(dovecot-imapd dovecot-lmtpd dovecot-sieve postfix dnsmasq-base prometheus) status=0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; } ||
        status=$?
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    [ "$status" = 0 ] || die "could not install ${pkgs[*]}"
    if [ -d /run/systemd/system ]; then
        systemctl disable --now dovecot postfix prometheus >/dev/null 2>&1 || true
    else
        doveadm stop >/dev/null 2>&1 || true       # the system Dovecot, if running
        postfix stop >/dev/null 2>&1 || true       # the system Postfix, if running
    fi
}

# --- Configuration ----------------------------------------------------------

write_dovecot_conf() {
    local uid gid
    uid=$(id -u mail) gid=$(id -g mail)   # mail is stored as Debian's "mail" user
    mkdir -p "$STATE/dovecot-state" "$MAIL"
    chown mail:mail "$MAIL"
    cat >"$DOVECOT_CONF" <<EOF
# Written by tests/mail-servers.sh: changes are lost at the next start.
instance_name = relais-dovecot
base_dir = $DOVECOT_RUN
state_dir = $STATE/dovecot-state
log_path = $STATE/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_default_realm = localhost
# Any user, one password; bare user names become user@localhost.
passdb {
  driver = static
  args = password=$PASSWORD
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$MAIL/%d/%n allow_all_users=yes
}
first_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:~/Maildir
# IDLE: look for new mail every second, send "* OK Still here" every 10 s.
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 10 secs
protocol imap {
  mail_max_userip_connections = 100
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
# Postfix delivers here. The socket is $DOVECOT_RUN/lmtp.
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
EOF
}

write_postfix_conf() {
    mkdir -p "$POSTFIX_CONF" "$POSTFIX_QUEUE" "$STATE/postfix-data"
    chown postfix "$STATE/postfix-data"   # master.lock and caches go there
    cat >"$POSTFIX_CONF/main.cf" <<EOF
# Written by tests/mail-servers.sh: changes are lost at the next start.
compatibility_level = 3.6
queue_directory = $POSTFIX_QUEUE
data_directory = $STATE/postfix-data
mail_owner = postfix
setgid_group = postdrop
myhostname = relais-test.localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
# Every domain is ours and goes to Dovecot; nothing is relayed outside.
virtual_mailbox_domains = static:all
virtual_mailbox_maps = static:ok
virtual_transport = lmtp:unix:$DOVECOT_RUN/lmtp
smtpd_recipient_restrictions = check_recipient_access regexp:$POSTFIX_CONF/reject, permit_mynetworks, reject
smtputf8_enable = no
message_size_limit = 62914560
mailbox_size_limit = 0
# Retry quickly while Dovecot is down.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
# Log to a file through postlogd (master.cf), no syslog needed.
maillog_file = $STATE/postfix.log
maillog_file_prefixes = $STATE
EOF
    # A 550 needs spelling out: a plain REJECT answers 554.
    echo '/^reject/ 550 5.1.1 No such user' >"$POSTFIX_CONF/reject"
    # No chroot anywhere (column 5 is "n"), and smtpd on our port only.
    cat >"$POSTFIX_CONF/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
}

# --- Running ----------------------------------------------------------------

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(tr -dc 0-9 <"$1")" 2>/dev/null; }
imap_running() { pid_alive "$DOVECOT_RUN/master.pid"; }
smtp_running() { pid_alive "$POSTFIX_QUEUE/pid/master.pid"; }

# wait_for COMMAND...: true as soon as COMMAND is, false after about 20 s.
wait_for() {
    local tries=100
    until "$@"; do
        tries=$((tries - 1)); [ "$tries" -gt 0 ] || return 1
        sleep 0.2
    done
}
not() { ! "$@"; }

# end_session SID [SIGNAL]: signals the processes left in session SID (TERM
# unless told), and is true once there are none.
end_session() {
    local pids; pids=$(ps -o pid= -s "$1" || true)
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086 # one word per process id
    kill "-${2:-TERM}" $pids 2>/dev/null; return 1
}

# wait_port PORT up|down NAME LOG: waits up to 20 s, else shows the log tail.
wait_port() {
    if [ "$2" = up ]; then wait_for listening "$1" && return 0
    else wait_for not listening "$1" && return 0; fi
    echo "mail-servers: $3 is not $2 on port $1 after 20 s; end of $4:" >&2
    tail -n 20 "$4" >&2 2>/dev/null || true
    exit 1
}

start_imap() {
    imap_running && return 0
    listening "$IMAP_PORT" && die "port $IMAP_PORT is taken by another program"
    write_dovecot_conf
    dovecot -c "$DOVECOT_CONF" || die "dovecot did not start, see $STATE/dovecot.log"
    wait_port "$IMAP_PORT" up Dovecot "$STATE/dovecot.log"
}

stop_imap() {
    if imap_running; then
        # Dovecot's processes all share the session of its master (whose id
        # is the session's). Stopping the master alone leaves each imap
        # process serving its client on, so the whole session is signalled:
        # clients get "* BYE Server shutting down." as in a real restart.
        local sid
        sid=$(tr -dc 0-9 <"$DOVECOT_RUN/master.pid")
        wait_for end_session "$sid" || end_session "$sid" KILL || true
    fi
    wait_port "$IMAP_PORT" down Dovecot "$STATE/dovecot.log"
}

start_smtp() {
    smtp_running && return 0
    listening "$SMTP_PORT" && die "port $SMTP_PORT is taken by another program"
    write_postfix_conf
    # "start" checks the files and makes the queue's subdirectories as needed.
    postfix -c "$POSTFIX_CONF" start >>"$STATE/postfix.log" 2>&1 ||
        { tail -n 20 "$STATE/postfix.log" >&2; die "postfix did not start"; }
    wait_port "$SMTP_PORT" up Postfix "$STATE/postfix.log"
}

stop_smtp() {
    if smtp_running; then
        # "abort" ends the daemons at once, so open sessions drop like a crash.
        postfix -c "$POSTFIX_CONF" abort >>"$STATE/postfix.log" 2>&1 || true
        wait_for not smtp_running || true
    fi
    wait_port "$SMTP_PORT" down Postfix "$STATE/postfix.log"
}

# Gives MAILBOX of USER a new UIDVALIDITY (NEW, or the current one plus 1).
uidvalidity() {
    [ $# -ge 2 ] || die "usage: $0 uidvalidity USER MAILBOX [NEW_VALUE]"
    imap_running || die "IMAP is not running"
    local new=${3:-}
    if [ -z "$new" ]; then
        new=$(doveadm -c "$DOVECOT_CONF" -f flow mailbox status -u "$1" uidvalidity "$2" |
            sed 's/.*uidvalidity=//')
        new=$((new + 1))
    fi
    doveadm -c "$DOVECOT_CONF" mailbox update --uid-validity "$new" -u "$1" "$2"
    echo "$new"
}

case "${1:-}" in
start | stop | start-imap | stop-imap | start-smtp | stop-smtp | uidvalidity) need_root "$1" ;;
esac
case "${1:-}" in
start)
    [ "${2:-}" = --keep ] || [ $# -le 1 ] || die "usage: $0 start [--keep]"
    install_if_missing
    stop_imap; stop_smtp                     # a second start restarts cleanly
    if [ "${2:-}" != --keep ]; then          # a clean mail store, queue and logs
        rm -rf "$MAIL" "$POSTFIX_QUEUE" "$STATE/dovecot-state" "$STATE"/*.log
    fi
    start_imap; start_smtp ;;
stop) stop_imap; stop_smtp ;;
start-imap) install_if_missing; start_imap ;;
stop-imap) stop_imap ;;
start-smtp) install_if_missing; start_smtp ;;
stop-smtp) stop_smtp ;;
uidvalidity) shift; uidvalidity "$@" ;;
status)
    if imap_running; then echo "imap: running on 127.0.0.1:$IMAP_PORT"; else echo "imap: stopped"; fi
    if smtp_running; then echo "smtp: running on 127.0.0.1:$SMTP_PORT"; else echo "smtp: stopped"; fi ;;
env)
    cat <<EOF
export RELAIS_TEST_IMAP_HOST=127.0.0.1
export RELAIS_TEST_IMAP_PORT=$IMAP_PORT
export RELAIS_TEST_SMTP_HOST=127.0.0.1
export RELAIS_TEST_SMTP_PORT=$SMTP_PORT
EOF
    printf 'export RELAIS_TEST_MAIL_PASSWORD=%q\nexport RELAIS_TEST_MAIL_DIR=%q\n' "$PASSWORD" "$STATE" ;;
*) sed -n '/^set -e/q; 2,$ s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;   # the header above
esac
