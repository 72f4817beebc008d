{
  # faultline_sanitize: a -fsanitize= list (e.g. "address,undefined") for the
  # sanitizer build (scripts/sanitize.sh); empty for the normal build.
  "variables": { "faultline_sanitize%": "" },
  "targets": [
    {
      "target_name": "faultline",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/uffd.cc",
        "src/mapping.cc",
        "src/poller.cc",
        "src/ready_pages.cc",
        "src/abandon.cc",
        "src/files.cc",
        "src/pagemap.cc",
        "src/copy_page.cc",
        "src/installer.cc",
        "src/watchdog.cc",
        "src/peers.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [
        ["faultline_sanitize != ''", {
          # -O1 -g: reports with exact lines and no frames inlined away.
          "cflags_cc": ["-fsanitize=<(faultline_sanitize)", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=<(faultline_sanitize)"]
        }]
      ]
    }
  ]
}
