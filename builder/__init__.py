"""The Dockerfile builder: .dockerignore, planner, dispatcher, RUN, COPY/ADD, layers, cache.

The Dockerfile language itself (reading, checks, expansion) is `dockerd_py.dockerfile`.
"""
