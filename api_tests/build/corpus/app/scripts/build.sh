#!/bin/sh
# build.sh VERSION OUT: "compiles" the app into OUT/bin/app
set -e
mkdir -p "$2/bin"
sed "s/@VERSION@/$1/g" src/main.sh > "$2/bin/app"
chmod 755 "$2/bin/app"
echo "$1" > "$2/VERSION"
