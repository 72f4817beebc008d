{
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
        "src/watchdog.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
