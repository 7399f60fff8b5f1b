"""regbatch"""
