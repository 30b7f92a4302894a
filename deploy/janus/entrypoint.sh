#!/bin/sh
# Writes Janus's configuration from the environment, then runs Janus.
#   JANUS_API_SECRET  required: every API request must carry it (Parley's requests do)
#   JANUS_ADMIN_KEY   required: only its holder (Parley) creates VideoRoom rooms
#   JANUS_PUBLIC_IP   the address browsers reach for media (1:1 NAT), if not the host's
#   JANUS_RTP_PORTS   the UDP port range for media (published by docker-compose.yml)
set -eu
: "${JANUS_API_SECRET:?set JANUS_API_SECRET}"
: "${JANUS_ADMIN_KEY:?set JANUS_ADMIN_KEY}"
conf=/tmp/janus
lib=/usr/lib/x86_64-linux-gnu/janus
mkdir -p "$conf"
cat > "$conf/janus.jcfg" <<CFG
general: {
  configs_folder = "$conf"
  plugins_folder = "$lib/plugins"
  transports_folder = "$lib/transports"
  events_folder = "$lib/events"
  loggers_folder = "$lib/loggers"
  debug_level = 4
  api_secret = "$JANUS_API_SECRET"
}
media: { rtp_port_range = "${JANUS_RTP_PORTS:-20000-20200}" }
nat: { ice_ignore_list = "vmnet" }
plugins: { disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so" }
transports: { disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }
loggers: { disable = "libjanus_jsonlog.so" }
events: { broadcast = false }
CFG
cat > "$conf/janus.transport.http.jcfg" <<CFG
general: { json = "plain", base_path = "/janus", http = true, port = 8088, https = false }
admin: { admin_http = false }
CFG
cat > "$conf/janus.plugin.videoroom.jcfg" <<CFG
general: { admin_key = "$JANUS_ADMIN_KEY" }
CFG
set -- janus -F "$conf" --disable-colors
if [ -n "${JANUS_PUBLIC_IP:-}" ]; then set -- "$@" --nat-1-1="$JANUS_PUBLIC_IP"; fi
exec "$@"
