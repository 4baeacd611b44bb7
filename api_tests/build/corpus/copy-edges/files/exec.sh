#!/bin/sh
echo exec-ok
