"""Load Trove guest images into Glance and register them with Trove."""

import warnings

# python-troveclient imports eventlet only for time.sleep; eventlet then
# prints a deprecation banner that users of these tools can do nothing about.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
