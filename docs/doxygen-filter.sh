#!/bin/sh
# Doxygen INPUT_FILTER: the headers comment in plain // lines above each
# declaration (house style). This turns those lines into /// so Doxygen
# attaches them, and escapes what Doxygen would read as markup in them
# (backslashes, <tags>, @ and \ commands, #links, ::links, &entities, $).
exec sed -e '/^[[:space:]]*\/\/\( \|$\)/{
s/\\/\\\\/g
s/</\\</g
s/>/\\>/g
s/@/\\@/g
s/#/\\#/g
s/&/\\\&/g
s/\$/\\$/g
s/::/\\::/g
s/%/\\%/g
s|^\([[:space:]]*\)//|\1///|
}' "$1"
