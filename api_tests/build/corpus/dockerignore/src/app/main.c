src/app/main.c
