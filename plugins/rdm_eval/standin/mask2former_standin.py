# Stand-in detector config for `rdm run --rehearse`: the stand-in scorer only checks that a config
# file is passed explicitly (as rdm always passes the canonical mmdet config to the real scorer).
