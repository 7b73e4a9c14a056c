"""What the diffusers-based one-step generators (flux2-klein, flux1, wan) share.

A plain library package with no entry point: it registers nothing, so it never appears in
``rdm plugins``; the generator plugins import it. ``base`` holds the generator base class,
``loading`` finds and loads pipeline folders, ``weights`` reads weight files.
"""
