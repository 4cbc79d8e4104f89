"""A version as an OCI artifact (see docs/oci.md).

``mapping`` turns a version's immutable facts into the config blob and image
manifest bytes (and back), ``layout`` writes and reads OCI image layouts on disk
(``export --oci-layout``, ``import oci-layout:DIR``). Nothing here imports an HTTP
stack: the CLI's start-up path stays light.
"""
