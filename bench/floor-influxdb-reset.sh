#!/bin/bash
# Floor for `tether reset influxdb`: one process start (this bash) and the
# same DROP+CREATE DATABASE as the recipe's reset, one HTTP/1.0 exchange
# read to its end, over bash's /dev/tcp.  PORT as $1; the password from
# TETHER_INFLUXDB_PASSWORD (never on a command line).
set -e
pw=$TETHER_INFLUXDB_PASSWORD
exec 3<>"/dev/tcp/127.0.0.1/$1"
printf 'POST /query?u=tether&p=%s&q=DROP+DATABASE+%%22tether%%22%%3BCREATE+DATABASE+%%22tether%%22 HTTP/1.0\r\n\r\n' "$pw" >&3
body=; while IFS= read -r line <&3; do body=$line; done
[[ $body == *'"statement_id":1}]}'* ]]
