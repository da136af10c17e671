{
  "targets": [{
    "target_name": "volmirror_native",
    "sources": ["src/addon.c", "src/dr.c", "src/journal.c", "src/mount.c", "src/record.c", "src/table.c"],
    "cflags": ["-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11", "-D_GNU_SOURCE", "-pthread"],
    "ldflags": ["-pthread"]
  }]
}
