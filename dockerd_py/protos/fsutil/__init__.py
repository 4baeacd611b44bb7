"""tonistiigi/fsutil's wire types (package fsutil.types): the file-sync packet stream."""
